// Writes a safetensors file (docs/file-formats.md) whole or not at all (loaders/atomic_file.h).
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

// Throws WriteError (atomic_file.h) naming the file and what failed (e.g. a full disk); the
// target is then as it was. With `data_crc32_key`, the metadata also gets that entry: the
// CRC-32 of the whole data area as 8 hex digits (crc32.h), which a reader checks.
void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata, const std::string& data_crc32_key = "");
// The bytes such a file holds (for a state kept elsewhere than a file, e.g. in Redis).
std::string safetensors_bytes(std::vector<TensorToWrite> tensors, const std::map<std::string, std::string>& metadata,
                              const std::string& data_crc32_key = "");

}  // namespace longvq
