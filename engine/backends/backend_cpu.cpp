// The CPU device and backend: host memory, kernels from kernels/cpu (OpenMP threads). The device
// packs every linear matrix once into the CPU kernels' private panel layout (cpu_ops.h).
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "engine/backends/backend.h"
#include "engine/backends/backend_cpu.h"
#include "kernels/cpu/cpu_ops.h"

namespace longvq {
namespace {

// Every block starts with a 64-byte header (what host_free needs) so that data stays 64-aligned.
// Blocks of at least kMapBytes are their own anonymous mappings: a server holds thousands of
// session states (~0.4 MB each) made and freed across threads, which malloc's arenas fragmented
// to ~2x their size; a mapping costs exactly its pages and goes back to the system when freed.
constexpr size_t kHeader = 64;
constexpr size_t kMapBytes = 256 * 1024;

void* host_allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  const size_t total = kHeader + rounded;
  char* base;
  size_t mapped = 0;
  if (rounded >= kMapBytes) {
    void* m = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<char*>(m);  // zero-filled by the system
    mapped = total;
  } else {
    base = static_cast<char*>(std::aligned_alloc(64, total));
    if (!base) throw std::bad_alloc();
    std::memset(base + kHeader, 0, rounded);
  }
  std::memcpy(base, &mapped, sizeof mapped);
  return base + kHeader;
}

void host_free(void* ptr) {
  if (!ptr) return;
  char* base = static_cast<char*>(ptr) - kHeader;
  size_t mapped;
  std::memcpy(&mapped, base, sizeof mapped);
  if (mapped) ::munmap(base, mapped);
  else std::free(base);
}

// Zero-byte copies are skipped: empty buffers (the ring of a W = 0 model) may have no memory.
void host_copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    ctx_.threads = threads > 0 ? threads : default_cpu_threads();
  }
  std::string name() const override { return "cpu (" + std::to_string(ctx_.threads) + " threads)"; }
  std::string unsupported_reason(const OpCall&) const override { return ""; }
  void* allocate(size_t bytes) override { return host_allocate(bytes); }
  void deallocate(void* ptr) override { host_free(ptr); }
  void upload(void* dst, const void* src, size_t bytes) override { host_copy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { host_copy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { host_copy(dst, src, bytes); }
  void fill_zero(void* dst, size_t bytes) override {
    if (bytes) std::memset(dst, 0, bytes);
  }
  void run(const OpCall& call) override { cpu_run(call, ctx_); }

 private:
  CpuContext ctx_;
};

class CpuDevice final : public Device {
 public:
  BackendKind kind() const override { return BackendKind::cpu; }
  std::string name() const override { return "cpu"; }
  bool host_memory() const override { return true; }
  bool bf16_weights() const override { return true; }
  bool q8_weights() const override { return true; }
  void* allocate(size_t bytes) override { return host_allocate(bytes); }
  void deallocate(void* ptr) override { host_free(ptr); }
  void upload(void* dst, const void* src, size_t bytes) override { host_copy(dst, src, bytes); }
  std::optional<PreparedWeight> prepare_weight(const TensorRef& dense, WeightUse use) override {
    if (use != WeightUse::linear) return std::nullopt;
    const int64_t out = dense.shape.at(0), in = dense.shape.at(1);
    PreparedWeight w{BackendBuffer(*this, cpu_linear_panel_bytes(out, in, dense.dtype)), dense};
    cpu_pack_linear_panels(dense, w.buffer.data());  // straight into its final memory
    w.ref.data = w.buffer.data();
    w.ref.layout = kCpuLinearPanels;
    return w;
  }
  std::unique_ptr<Backend> make_backend(int threads) override { return std::make_unique<CpuBackend>(threads); }
};

}  // namespace

int default_cpu_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

Device& cpu_device() {
  static CpuDevice device;
  return device;
}

}  // namespace longvq
