#include <catch2/catch.hpp>

#include "engine/runtime/version.h"

TEST_CASE("version is a non-empty dotted number", "[build_info]") {
  const std::string v(longvq::version());
  REQUIRE_FALSE(v.empty());
  CHECK(v.find_first_not_of("0123456789.") == std::string::npos);
  CHECK(longvq::build_info().find("longvq " + v) == 0);
}

TEST_CASE("build_info reports the CUDA backend as compiled", "[build_info]") {
  // LONGVQ_HAVE_CUDA reaches this file through longvq's usage requirements,
  // so a mismatch means the library and its consumers were configured differently.
  const std::string info = longvq::build_info();
  INFO("build_info: " << info);
  const bool says_on = info.find("cuda=on") != std::string::npos;
  const bool says_off = info.find("cuda=off") != std::string::npos;
  CHECK(says_on != says_off);
  CHECK(says_on == bool(LONGVQ_HAVE_CUDA));
}
