#include "loaders/safetensors_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace longvq {
namespace {

size_t element_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "U8") return 1;
  throw std::invalid_argument("safetensors writer: unknown dtype " + dtype);
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Larger elements first keeps every tensor aligned (the Python writer does the same).
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorToWrite& a, const TensorToWrite& b) {
    size_t sa = element_size(a.dtype), sb = element_size(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();

  const std::filesystem::path tmp = path.string() + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(header_len >> (8 * i));
  int saved_errno = 0;  // of the first failure
  auto step = [&](bool done) {
    if (!done && saved_errno == 0) saved_errno = errno ? errno : EIO;
    return done;
  };
  bool ok = step(std::fwrite(len_bytes, 1, 8, f) == 8) && step(std::fwrite(text.data(), 1, text.size(), f) == text.size());
  for (const TensorToWrite& t : tensors)
    ok = ok && step(t.nbytes == 0 || std::fwrite(t.data, 1, t.nbytes, f) == t.nbytes);
  ok = step(std::fflush(f) == 0) && ok;
  ok = step(std::fclose(f) == 0) && ok;
  if (!ok) {
    std::filesystem::remove(tmp);
    throw std::runtime_error("writing " + path.string() + " failed (" + std::strerror(saved_errno) +
                             "); nothing was written: free some space or choose another path");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace longvq
