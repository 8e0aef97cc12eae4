// Fuzz target: config.json (loaders/config.cpp): parse, range checks, then what a valid config
// implies (tensor list, fingerprint). Only LoadError may escape.
#include <cstddef>
#include <cstdint>

#include "loaders/config.h"
#include "loaders/load_error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const longvq::ModelConfig cfg = longvq::load_config(fuzz::write_input(data, size, ".json"));
    size_t n = longvq::expected_tensors(cfg).size();
    n += cfg.fingerprint().size();
    volatile size_t keep = n;
    (void)keep;
  } catch (const longvq::LoadError&) {
  }
  return 0;
}
