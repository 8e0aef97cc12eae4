// Helpers shared by the loader tests: temporary directories, a small safetensors writer (to
// build good and broken files byte by byte), and catching a LoadError.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loaders/load_error.h"
#include "loaders/safetensors.h"

namespace longvq::test {

namespace fs = std::filesystem;

inline fs::path fixtures_dir() { return fs::path(LONGVQ_FIXTURES_DIR); }
inline fs::path golden_dir() { return fs::path(LONGVQ_LOADERS_TEST_DIR); }

inline std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(fixtures_dir())) {
    if (e.is_directory() && fs::exists(e.path() / "config.json")) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("longvq_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// u64 length | header text padded with spaces to a multiple of 8 | data.
inline std::string raw_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

struct Entry {
  std::string name;
  std::string dtype;  // "F32", ...
  std::vector<int64_t> shape;
  std::string bytes;
};

inline size_t dtype_bytes(const std::string& d) {
  return file_dtype_size(parse_file_dtype(d).value());
}

// As tools/longvq_ref/safetensors_io.write: largest elements first, then by name, no gaps.
inline std::string make_file(std::vector<Entry> entries, const std::map<std::string, std::string>& metadata = {}) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const size_t sa = dtype_bytes(a.dtype), sb = dtype_bytes(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& e : entries) {
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + e.bytes.size()}}};
    data += e.bytes;
  }
  return raw_file(header.dump(), data);
}

// Every tensor of an open file, as entries to modify and write back.
inline std::vector<Entry> entries_of(const SafetensorsFile& f) {
  std::vector<Entry> out;
  for (const auto& [name, t] : f.tensors()) {
    out.push_back({name, std::string(file_dtype_name(t.dtype)), t.shape,
                   std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  }
  return out;
}

// Runs f, which must throw a LoadError; returns it (any other exception fails the test).
template <typename F>
LoadError catch_load_error(F&& f) {
  try {
    f();
  } catch (const LoadError& e) {
    return e;
  }
  FAIL("expected a LoadError, none was thrown");
  throw std::logic_error("unreachable");
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace longvq::test
