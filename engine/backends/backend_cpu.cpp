// The CPU device and backend: host memory, kernels from kernels/cpu (OpenMP threads). The device
// packs every linear matrix once into the CPU kernels' private panel layout (cpu_ops.h).
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "engine/backends/backend.h"
#include "engine/backends/backend_cpu.h"
#include "kernels/cpu/cpu_ops.h"

namespace longvq {
namespace {

void* host_allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return p;
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
  void deallocate(void* ptr) override { std::free(ptr); }
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
  void* allocate(size_t bytes) override { return host_allocate(bytes); }
  void deallocate(void* ptr) override { std::free(ptr); }
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
