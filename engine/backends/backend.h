// The interfaces every compute backend implements (ggml's device / buffer type / backend split):
//
//   Device   one per kind of hardware in the process (device(kind)): memory that every session
//            shares (the model's weights), the weight layouts its kernels want, and the factory
//            of backends. No threads, no streams: a Model holds weights on a Device.
//   Backend  one per Session: runs ops with its own threads (CPU) or stream (CUDA), and owns
//            the memory the session plans (arenas, States), with stream-ordered copies.
//
// The engine never touches backend memory directly: weights are uploaded once, the planned
// arena and each State are allocated once, and a run is a sequence of run() calls over
// TensorRefs that point into those buffers. A new backend implements these two interfaces and
// its kernels; graph building and planning do not change.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops/op.h"

namespace longvq {

enum class BackendKind { cpu, cuda };
const char* backend_kind_name(BackendKind);

// Memory that can be allocated and freed: a Device's or a Backend's.
class Memory {
 public:
  virtual ~Memory() = default;
  virtual void* allocate(size_t bytes) = 0;  // zero-filled, aligned to 64 bytes
  virtual void deallocate(void* ptr) = 0;
};

// An owned buffer of some Memory.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(Memory& memory, size_t bytes)
      : memory_(&memory), ptr_(bytes ? memory.allocate(bytes) : nullptr), bytes_(bytes) {}
  BackendBuffer(BackendBuffer&& o) noexcept { *this = std::move(o); }
  BackendBuffer& operator=(BackendBuffer&& o) noexcept {
    std::swap(memory_, o.memory_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~BackendBuffer() {
    if (ptr_) memory_->deallocate(ptr_);
  }
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  Memory* memory_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// What an op reads a weight as: the device may keep a private layout for it (its repack).
enum class WeightUse : uint8_t {
  dense,   // as stored: row-major
  linear,  // linear's W [out, in]
};

// A weight in a device's private layout: its memory and the tensor kernels get (TensorRef::layout
// says which layout; shape and dtype are the dense weight's).
struct PreparedWeight {
  BackendBuffer buffer;
  TensorRef ref;
};

// What a backend's run_graph did, for tests and reports (CUDA: graph capture and replay);
// backends that record nothing report zeros.
struct GraphStats {
  uint64_t recorded = 0;  // graphs captured
  uint64_t replayed = 0;  // launches of a recorded graph (the one right after its capture too)
  uint64_t eager = 0;     // run_graph calls run op by op (a generation's first sight, graphs off)
  uint64_t dropped = 0;   // recorded graphs destroyed (evicted, or the kernel scratch grew)
};

class Backend : public Memory {
 public:
  virtual std::string name() const = 0;
  // "" when this backend can run `call`, else why not (checked once per graph node).
  virtual std::string unsupported_reason(const OpCall& call) const = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;    // host → backend
  virtual void download(void* dst, const void* src, size_t bytes) = 0;  // backend → host
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;      // backend → backend
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  virtual void run(const OpCall& call) = 0;
  // Runs a whole graph's calls in order. A backend may record and replay them (CUDA graphs):
  // the executor passes identical calls (same pointers and shapes) for identical runs, and
  // `generation` changes whenever the calls may have changed (the executor rebound them), so a
  // backend need not compare the calls themselves.
  virtual void run_graph(const std::vector<OpCall>& calls, uint64_t generation) {
    (void)generation;
    for (const OpCall& call : calls) run(call);
  }
  virtual void synchronize() {}
  virtual GraphStats graph_stats() const { return {}; }
};

class Device : public Memory {
 public:
  virtual BackendKind kind() const = 0;
  virtual std::string name() const = 0;
  // True when device memory is ordinary host memory (then host buffers, e.g. an mmap'd weight
  // file, can be used in place instead of uploaded).
  virtual bool host_memory() const = 0;
  // True when linear and embed_tokens take bf16 weight matrices; otherwise a model's BF16
  // matrices are widened to f32 at load (same values: bf16 → f32 is exact).
  virtual bool bf16_weights() const { return false; }
  // True when linear and embed_tokens take q8_0 weight matrices (DType::q8); otherwise a model's
  // int8 matrices are dequantized to f32 at load (the same values: the dequantization is exact).
  virtual bool q8_weights() const { return false; }
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;  // host → device, synchronous
  // The weight `dense` (device memory) in this device's private layout for `use`, or nothing
  // when its kernels read the dense tensor itself.
  virtual std::optional<PreparedWeight> prepare_weight(const TensorRef& dense, WeightUse use) {
    (void)dense, (void)use;
    return std::nullopt;
  }
  // A backend on this device; threads = 0 picks the number of cores (CPU; CUDA ignores it).
  virtual std::unique_ptr<Backend> make_backend(int threads) = 0;
};

// The process's device of that kind, made on first use; throws std::runtime_error saying why
// when there is none (no CUDA in the build, no GPU).
Device& device(BackendKind kind);
// Whether a CUDA device can be used here: the build has it and a GPU is present. When not,
// *why says so (e.g. "this build has no CUDA backend", "no CUDA device: ...").
bool cuda_backend_available(std::string* why = nullptr);
// `auto`: CUDA when available, else the CPU.
BackendKind default_backend_kind();

}  // namespace longvq
