// The CUDA backend: device memory, the kernels of kernels/cuda on one stream per backend, and
// CUDA graphs that record a whole run once and replay it. Built as the loadable module
// liblongvq_cuda_backend.so (engine/cuda_module.cpp opens it on first use), so programs that
// run on the CPU never load the CUDA libraries.
//
// The device (one per process) holds the model weights in memory allocated and filled
// synchronously; each backend (one per Session) has its own stream and cuBLAS handle. Every copy
// of a backend is stream-ordered (cudaMemcpyAsync on its stream, then a wait), so a kernel never
// races a copy. A run's calls come with a generation number that changes whenever the executor
// rebound them: the second time a generation is seen its calls are captured into a CUDA graph
// and from then on replayed with one launch. That is what makes decode cheap: the executor
// passes the same calls for every step of one State (data-dependent values such as positions and
// token ids are read on the device). Generations seen once (a prompt's last partial chunk, one
// classify shape) are remembered apart from the recorded graphs, so one-off runs never evict
// the decode graph. Before a call runs or is captured, cuda_prepare does what cannot be done
// during a capture (ema's cuFFT plans, vq_attention's shared-memory opt-in) and says how much
// kernel scratch the call needs; the scratch grows only then, outside a capture, and growing it
// drops the recorded graphs, which point at the old scratch. The cuFFT plans live as long as the
// backend (a recorded graph executes them) and are destroyed after the graphs. Every generation
// runs eagerly once before it is captured, so kernels and cuFFT's modules are loaded outside
// captures too. Kernels report out-of-range values through a device error word that
// synchronize() turns into an exception. LONGVQ_CUDA_GRAPHS=0 turns capture off;
// LONGVQ_CUDA_EMA_FFT and LONGVQ_CUDA_LINEAR choose kernel forms (kernels/cuda/cuda_ops.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string>

#include "engine/backends/backend.h"
#include "kernels/cuda/cuda_ops.h"

namespace longvq {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(err));
}
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS: ") + what + " failed: " + cublasGetStatusString(status));
}

constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;  // fixed, so graph capture never allocates
constexpr size_t kMaxGraphs = 32;                           // recorded graphs kept per backend
constexpr size_t kMaxSeenOnce = 64;                         // generations remembered as seen once

int device_count(std::string* why_none) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error so later runtime calls start clean
    if (why_none) {
      *why_none = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
      // The runtime reports a missing libcuda.so as an "insufficient" driver.
      if (err == cudaErrorInsufficientDriver) *why_none += "; is the NVIDIA driver installed?";
    }
    return 0;
  }
  if (count == 0 && why_none) *why_none = "the CUDA driver reports no devices";
  return count;
}

class CudaBackend final : public Backend {
 public:
  // The options first: a bad LONGVQ_CUDA_* value throws before anything is allocated.
  explicit CudaBackend(std::string name) : name_(std::move(name)), options_(cuda_options_from_env()) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check(cublasCreate(&cublas_), "cublasCreate");
    check(cublasSetStream(cublas_, stream_), "cublasSetStream");
    // fp32 products in fp32: no TF32 (CUBLAS_DEFAULT_MATH never uses it for SGEMM).
    check(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    check(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes), "cudaMalloc (cuBLAS workspace)");
    check(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes), "cublasSetWorkspace");
    check(cudaMalloc(&error_flags_, sizeof(uint32_t)), "cudaMalloc (error flags)");
    check(cudaMemsetAsync(error_flags_, 0, sizeof(uint32_t), stream_), "cudaMemsetAsync (error flags)");
    wait();
    const char* env = std::getenv("LONGVQ_CUDA_GRAPHS");
    graphs_enabled_ = !(env && std::strcmp(env, "0") == 0);
    fft_ = cuda_fft_plans_create();
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);  // nothing may still use what is freed below (errors ignored)
    drop_graphs();
    cuda_fft_plans_destroy(fft_);  // after the graphs that execute its plans
    cudaFree(scratch_);
    cudaFree(error_flags_);
    cudaFree(cublas_workspace_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }

  std::string unsupported_reason(const OpCall& call) const override { return cuda_unsupported_reason(call); }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");  // 256-byte aligned
    check(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
    wait();
    return p;
  }
  void deallocate(void* ptr) override { cudaFree(ptr); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync (copy)");
    wait();
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (upload)");
    wait();  // the caller may free `src` right after
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (download)");
    wait();
  }
  void fill_zero(void* dst, size_t bytes) override {
    if (!bytes) return;
    check(cudaMemsetAsync(dst, 0, bytes, stream_), "cudaMemsetAsync");
    wait();
  }

  void run(const OpCall& call) override {
    reserve_scratch(cuda_prepare(call, context()));
    cuda_run(call, context());
  }

  void run_graph(const std::vector<OpCall>& calls, uint64_t generation) override {
    size_t need = 0;
    for (const OpCall& c : calls) need = std::max(need, cuda_prepare(c, context()));  // outside any capture
    reserve_scratch(need);
    if (!graphs_enabled_) {
      run_eagerly(calls);
      return;
    }
    // Recorded graphs, most recently used first.
    auto rec = std::find_if(graphs_.begin(), graphs_.end(), [&](const Recorded& r) { return r.generation == generation; });
    if (rec != graphs_.end()) {
      graphs_.splice(graphs_.begin(), graphs_, rec);
      launch(rec->exec);
      return;
    }
    auto seen = std::find(seen_once_.begin(), seen_once_.end(), generation);
    if (seen == seen_once_.end()) {  // first sight: run eagerly (one-off runs stay eager)
      seen_once_.push_front(generation);
      if (seen_once_.size() > kMaxSeenOnce) seen_once_.pop_back();
      run_eagerly(calls);
      return;
    }
    seen_once_.erase(seen);
    if (graphs_.size() >= kMaxGraphs) {  // evict the least recently used recorded graph
      cudaGraphExecDestroy(graphs_.back().exec);
      graphs_.pop_back();
      ++stats_.dropped;
    }
    graphs_.push_front(Recorded{generation, record(calls)});
    ++stats_.recorded;
    launch(graphs_.front().exec);
  }

  GraphStats graph_stats() const override { return stats_; }

  void synchronize() override {
    wait();
    uint32_t flags = 0;
    check(cudaMemcpyAsync(&flags, error_flags_, sizeof flags, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
    if (flags) {
      check(cudaMemsetAsync(error_flags_, 0, sizeof flags, stream_), "cudaMemsetAsync");
      wait();
      throw std::out_of_range("CUDA kernels refused their input: " + cuda_error_flags_message(flags));
    }
  }

 private:
  struct Recorded {
    uint64_t generation;
    cudaGraphExec_t exec;
  };

  CudaContext context() const { return CudaContext{stream_, cublas_, scratch_, error_flags_, fft_, options_}; }
  void run_eagerly(const std::vector<OpCall>& calls) {
    for (const OpCall& c : calls) cuda_run(c, context());
    ++stats_.eager;
  }
  void launch(cudaGraphExec_t exec) {
    check(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");
    ++stats_.replayed;
  }
  void wait() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (a kernel failed)"); }

  void reserve_scratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return;
    wait();
    drop_graphs();  // recorded graphs point at the old scratch
    cudaFree(scratch_);
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    check(cudaMalloc(&scratch_, bytes), "cudaMalloc (kernel scratch)");
    scratch_bytes_ = bytes;
  }

  cudaGraphExec_t record(const std::vector<OpCall>& calls) {
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    cudaGraph_t graph = nullptr;
    try {
      for (const OpCall& c : calls) cuda_run(c, context());
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    check(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(err, "cudaGraphInstantiate");
    return exec;
  }

  void drop_graphs() {
    for (const Recorded& rec : graphs_) cudaGraphExecDestroy(rec.exec);
    stats_.dropped += graphs_.size();
    graphs_.clear();
    seen_once_.clear();
  }

  std::string name_;
  CudaOptions options_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  uint32_t* error_flags_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  bool graphs_enabled_ = true;
  CudaFftPlans* fft_ = nullptr;
  std::list<Recorded> graphs_;
  std::list<uint64_t> seen_once_;
  GraphStats stats_;
};

// Weights: memory every backend of the process reads, filled synchronously at load.
class CudaDevice final : public Device {
 public:
  CudaDevice() {
    std::string why;
    if (device_count(&why) == 0) throw std::runtime_error("no CUDA device: " + why + "; use the CPU backend");
    check(cudaGetDevice(&device_), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    name_ = std::string("cuda (") + prop.name + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
  }
  BackendKind kind() const override { return BackendKind::cuda; }
  std::string name() const override { return name_; }
  bool host_memory() const override { return false; }
  void* allocate(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");  // 256-byte aligned
    check(cudaMemset(p, 0, bytes), "cudaMemset");
    return p;
  }
  void deallocate(void* ptr) override { cudaFree(ptr); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
  }
  std::unique_ptr<Backend> make_backend(int) override { return std::make_unique<CudaBackend>(name_); }

 private:
  int device_ = 0;
  std::string name_;
};

// Copies `text` into the C buffer `out` of `size` bytes (NUL-terminated, truncated if needed).
void put_message(const std::string& text, char* out, size_t size) {
  if (!out || size == 0) return;
  const size_t n = std::min(text.size(), size - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

}  // namespace
}  // namespace longvq

// The module's entry points, in C types (engine/backends/cuda_module.cpp loads them with dlopen).
extern "C" int longvq_cuda_module_device_count(char* why_none, size_t why_size) {
  std::string why;
  const int n = longvq::device_count(&why);
  if (n == 0) longvq::put_message(why, why_none, why_size);
  return n;
}

// The process's CUDA device (a longvq::Device*), or null with the reason in `error`.
extern "C" void* longvq_cuda_module_device(char* error, size_t error_size) {
  try {
    static longvq::CudaDevice device;
    return static_cast<longvq::Device*>(&device);
  } catch (const std::exception& e) {
    longvq::put_message(e.what(), error, error_size);
    return nullptr;
  }
}
