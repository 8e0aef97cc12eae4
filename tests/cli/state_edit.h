// Editing state files byte by byte for the tests: plant a value in a tensor, change metadata,
// then write the file back with its checksum made right again (so that the check under test,
// not the checksum, is what refuses it) or left as it was.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "loaders/crc32.h"

namespace cli_test {

struct StateBytes {
  nlohmann::json header;  // with "__metadata__"
  std::string data;       // the data area

  // The bytes of tensor `name` in `data`.
  char* tensor(const std::string& name) {
    return data.data() + header.at(name).at("data_offsets")[0].get<size_t>();
  }
  std::string& meta(const std::string& key) { return header["__metadata__"][key].get_ref<std::string&>(); }
};

inline StateBytes parse_state(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return {nlohmann::json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

// The file again; with fix_checksum, "data_crc32" is recomputed over the (edited) data.
inline std::string write_state(StateBytes s, bool fix_checksum = true) {
  if (fix_checksum) s.meta("data_crc32") = longvq::crc32_hex(longvq::crc32(s.data.data(), s.data.size()));
  std::string text = s.header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + text + s.data;
}

template <typename T>
void put(StateBytes& s, const std::string& name, size_t index, T value) {
  std::memcpy(s.tensor(name) + index * sizeof(T), &value, sizeof(T));
}

}  // namespace cli_test
