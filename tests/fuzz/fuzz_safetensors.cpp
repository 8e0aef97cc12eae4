// Fuzz target: the safetensors reader (loaders/safetensors.cpp), both load modes, then every
// tensor's bytes widened to float where the dtype allows. Only LoadError may escape the reader.
#include <cstddef>
#include <cstdint>

#include "loaders/load_error.h"
#include "loaders/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = fuzz::write_input(data, size, ".safetensors");
  for (longvq::LoadMode mode : {longvq::LoadMode::mmap, longvq::LoadMode::read}) {
    try {
      longvq::SafetensorsFile f(path, mode);
      double sum = 0;
      for (const auto& [name, t] : f.tensors()) {
        if (t.dtype == longvq::FileDType::F32 || t.dtype == longvq::FileDType::F16 ||
            t.dtype == longvq::FileDType::BF16)
          for (float v : longvq::to_f32(t)) sum += v;
        else
          for (size_t i = 0; i < t.nbytes; ++i) sum += static_cast<unsigned char>(t.data[i]);
      }
      volatile double keep = sum;  // every byte was readable
      (void)keep;
    } catch (const longvq::LoadError&) {
    }
  }
  return 0;
}
