// Catch2's main for the tests that run on a chosen backend (test_ops, test_engine): adds
// `--backend cpu|cuda`. With cuda and no usable device it prints why and exits 77, which ctest
// reports as Skipped, so a missing GPU is visible and never a silent pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include "tests/backend_under_test.h"

namespace {
longvq::BackendKind g_backend = longvq::BackendKind::cpu;
}

longvq::BackendKind longvq::test::backend_under_test() { return g_backend; }

int main(int argc, char* argv[]) {
  Catch::Session session;
  std::string backend = "cpu";
  using namespace Catch::clara;
  session.cli(session.cli() | Opt(backend, "cpu|cuda")["--backend"]("the backend under test (default: cpu)"));
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  if (backend == "cuda") {
    std::string why;
    if (!longvq::cuda_backend_available(&why)) {
      std::printf("SKIPPED: the CUDA tests need a GPU: %s\n", why.c_str());
      return 77;
    }
    g_backend = longvq::BackendKind::cuda;
  } else if (backend != "cpu") {
    std::fprintf(stderr, "--backend must be cpu or cuda, not '%s'\n", backend.c_str());
    return 2;
  }
  return session.run();
}
