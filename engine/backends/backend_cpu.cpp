// The CPU backend: host memory, kernels from kernels/cpu (OpenMP threads).
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "engine/backends/backend.h"
#include "kernels/cpu/cpu_ops.h"

namespace longvq {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    ctx_.threads = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  std::string name() const override { return "cpu (" + std::to_string(ctx_.threads) + " threads)"; }
  bool host_memory() const override { return true; }
  bool bf16_weights() const override { return true; }
  bool wants_linear_panels() const override { return true; }
  std::string unsupported_reason(const OpCall&) const override { return ""; }
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    return p;
  }
  void deallocate(void* ptr) override { std::free(ptr); }
  // Zero-byte copies are skipped: empty buffers (the ring of a W = 0 model) may have no memory.
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill_zero(void* dst, size_t bytes) override {
    if (bytes) std::memset(dst, 0, bytes);
  }
  void run(const OpCall& call) override { cpu_run(call, ctx_); }

 private:
  CpuContext ctx_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace longvq
