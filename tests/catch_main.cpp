// Catch2's main lives in its own translation unit: it is by far the slowest file to
// compile (~12 s), and this way every test executable reuses the one object.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
