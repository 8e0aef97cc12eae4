// The backend a test binary checks, chosen on its command line: `--backend cpu` (default) or
// `--backend cuda` (backend_main.cpp exits 77, ctest's "Skipped", when no CUDA device is there).
#pragma once

#include "engine/runtime/model.h"

namespace longvq::test {

BackendKind backend_under_test();

}  // namespace longvq::test
