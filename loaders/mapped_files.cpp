#include "loaders/mapped_files.h"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace longvq {
namespace {

// A fixed table of atomics: read from a signal handler, so no locks and no allocation.
// state: 0 free, 1 being filled or emptied, 2 live.
struct Mapping {
  std::atomic<int> state{0};
  uintptr_t begin = 0, end = 0;
  char path[4096];
};
Mapping g_mappings[64];

}  // namespace

int register_mapping(const void* begin, size_t size, const std::string& path) noexcept {
  for (int i = 0; i < 64; ++i) {
    int expected = 0;
    if (!g_mappings[i].state.compare_exchange_strong(expected, 1)) continue;
    Mapping& m = g_mappings[i];
    m.begin = reinterpret_cast<uintptr_t>(begin);
    m.end = m.begin + size;
    const size_t n = std::min(path.size(), sizeof m.path - 1);
    std::memcpy(m.path, path.data(), n);
    m.path[n] = '\0';
    m.state.store(2);
    return i;
  }
  return -1;
}

void unregister_mapping(int slot) noexcept {
  if (slot < 0 || slot >= 64) return;
  g_mappings[slot].state.store(1);
  g_mappings[slot].state.store(0);
}

const char* mapped_file_at(const void* address) noexcept {
  const auto a = reinterpret_cast<uintptr_t>(address);
  for (const Mapping& m : g_mappings)
    if (m.state.load() == 2 && a >= m.begin && a < m.end) return m.path;
  return nullptr;
}

}  // namespace longvq
