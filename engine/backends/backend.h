// The interface every compute backend implements: memory, copies, and running one op.
//
// The engine never touches backend memory directly: weights are uploaded once, the planned
// arena and each State are allocated once, and a run is a sequence of run() calls over
// TensorRefs that point into those buffers. A new backend (CUDA) implements this interface and
// its kernels; graph building and planning do not change.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "engine/ops/op.h"

namespace longvq {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // True when backend memory is ordinary host memory (then host buffers, e.g. an mmap'd weight
  // file, can be used in place instead of uploaded).
  virtual bool host_memory() const = 0;
  // True when linear and embed_tokens take bf16 weight matrices; otherwise a model's BF16
  // matrices are widened to f32 at load (same values: bf16 → f32 is exact).
  virtual bool bf16_weights() const { return false; }
  // True when linear reads its W as panels (op.h: pack_linear_panels): the model then packs a
  // copy of every linear matrix once at load and passes it as linear's W_panels input.
  virtual bool wants_linear_panels() const { return false; }
  // "" when this backend can run `call`, else why not (checked once per graph node).
  virtual std::string unsupported_reason(const OpCall& call) const = 0;
  virtual void* allocate(size_t bytes) = 0;  // zero-filled, aligned to 64 bytes
  virtual void deallocate(void* ptr) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;    // host → backend
  virtual void download(void* dst, const void* src, size_t bytes) = 0;  // backend → host
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  virtual void run(const OpCall& call) = 0;
  // Runs a whole graph's calls in order. A backend may record and replay them (CUDA graphs):
  // the executor passes identical calls (same pointers and shapes) for identical runs.
  virtual void run_graph(const std::vector<OpCall>& calls) {
    for (const OpCall& call : calls) run(call);
  }
  virtual void synchronize() {}
};

// The CPU backend; threads = 0 picks the number of cores.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

// An owned backend buffer.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(Backend& backend, size_t bytes)
      : backend_(&backend), ptr_(bytes ? backend.allocate(bytes) : nullptr), bytes_(bytes) {}
  BackendBuffer(BackendBuffer&& o) noexcept { *this = std::move(o); }
  BackendBuffer& operator=(BackendBuffer&& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~BackendBuffer() {
    if (ptr_) backend_->deallocate(ptr_);
  }
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace longvq
