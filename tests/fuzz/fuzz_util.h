// Shared by the fuzz targets: the input as a temporary file (the loaders read files, as users
// give them). Each target catches exactly the error types its reader documents; anything else
// escaping (another exception, a crash, a sanitizer report) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz {

// A per-process scratch file rewritten for every input (tmpfs when available).
inline const std::filesystem::path& scratch_path(const char* suffix) {
  static const std::filesystem::path path = [&] {
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return dir / ("longvq_fuzz_" + std::to_string(getpid()) + suffix);
  }();
  return path;
}

inline const std::filesystem::path& write_input(const uint8_t* data, size_t size, const char* suffix = "") {
  const std::filesystem::path& p = scratch_path(suffix);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

}  // namespace fuzz
