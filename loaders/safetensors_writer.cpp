#include "loaders/safetensors_writer.h"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "loaders/atomic_file.h"
#include "loaders/crc32.h"

namespace longvq {
namespace {

size_t element_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "U8" || dtype == "I8") return 1;
  throw std::invalid_argument("safetensors writer: unknown dtype " + dtype);
}

}  // namespace

std::string safetensors_bytes(std::vector<TensorToWrite> tensors, const std::map<std::string, std::string>& metadata,
                              const std::string& data_crc32_key) {
  // Larger elements first keeps every tensor aligned (the Python writer does the same).
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorToWrite& a, const TensorToWrite& b) {
    size_t sa = element_size(a.dtype), sb = element_size(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  std::map<std::string, std::string> meta = metadata;
  if (!data_crc32_key.empty()) {
    uint32_t crc = 0;  // the data area is the tensors back to back, in this order
    for (const TensorToWrite& t : tensors) crc = crc32(t.data, t.nbytes, crc);
    meta[data_crc32_key] = crc32_hex(crc);
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!meta.empty()) header["__metadata__"] = meta;
  size_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(header_len >> (8 * i)));
  out += text;
  for (const TensorToWrite& t : tensors)
    if (t.nbytes) out.append(static_cast<const char*>(t.data), t.nbytes);
  return out;
}

void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata, const std::string& data_crc32_key) {
  write_file_atomically(path, safetensors_bytes(std::move(tensors), metadata, data_crc32_key));
}

}  // namespace longvq
