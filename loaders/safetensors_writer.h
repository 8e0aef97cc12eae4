// Writes a safetensors file (docs/file-formats.md) atomically: to NAME.tmp, then renamed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace longvq {

struct TensorToWrite {
  std::string name;
  std::string dtype;  // "F32", "I32", "I64", ...
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Throws std::runtime_error naming the file and what failed (e.g. a full disk); no partial
// file is left under `path`.
void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace longvq
