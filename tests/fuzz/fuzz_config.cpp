// Fuzz target: config.json (loaders/config.cpp): parse, range checks, then what a valid config
// implies (tensor list, fingerprint). Only LoadError may escape. The tensor list is made for at
// most 4 layers: it grows with n_layers (a valid config may claim 2^31 − 1), and the model loader
// refuses a config implying far more tensors than its file holds before listing them.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "loaders/config.h"
#include "loaders/load_error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    longvq::ModelConfig cfg = longvq::load_config(fuzz::write_input(data, size, ".json"));
    size_t n = cfg.fingerprint().size();
    cfg.n_layers = std::min<int64_t>(cfg.n_layers, 4);
    n += longvq::expected_tensors(cfg).size();
    volatile size_t keep = n;
    (void)keep;
  } catch (const longvq::LoadError&) {
  }
  return 0;
}
