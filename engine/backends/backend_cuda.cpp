// The CUDA backend: device memory, the kernels of kernels/cuda on one stream per backend, and
// CUDA graphs that record a whole run once and replay it. Built as the loadable module
// liblongvq_cuda_backend.so (engine/cuda_module.cpp opens it on first use), so programs that
// run on the CPU never load the CUDA libraries.
//
// Every copy is stream-ordered (cudaMemcpyAsync on our stream, then a wait), so a kernel never
// races a copy. A run's calls are turned into a signature (ops, parameters, pointers, shapes);
// the second time a signature is seen its calls are captured into a CUDA graph and from then on
// replayed with one launch. That is what makes decode cheap: the executor passes identical calls
// for every step of one State (data-dependent values such as positions and token ids are read
// on the device). Kernel scratch memory grows only outside a capture; growing it drops the
// recorded graphs, which point at the old scratch. Kernels report out-of-range values through a
// device error word that synchronize() turns into an exception.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include "engine/backends/backend.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_smoke.h"

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

// Appends the bytes of v to s.
template <class T>
void put(std::string& s, const T& v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string signature(const std::vector<OpCall>& calls) {
  std::string s;
  for (const OpCall& c : calls) {
    const OpParams& p = c.params;
    put(s, c.op);
    put(s, p.scale);
    put(s, p.activation);
    put(s, p.norm);
    put(s, p.affine);
    put(s, p.eps);
    put(s, p.bidirectional);
    put(s, p.stateful);
    put(s, p.has_lengths);
    put(s, p.window);
    put(s, p.quantize_window_keys);
    for (const auto* list : {&c.inputs, &c.outputs}) {
      put(s, list->size());
      for (const TensorRef& t : *list) {
        put(s, t.data);
        put(s, t.dtype);
        put(s, t.shape.size());
        for (int64_t d : t.shape) put(s, d);
      }
    }
  }
  return s;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    std::string why;
    if (longvq_cuda_device_count(&why) == 0) throw std::runtime_error("no CUDA device: " + why + "; use the CPU backend");
    check(cudaGetDevice(&device_), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    name_ = std::string("cuda (") + prop.name + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
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
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);  // nothing may still use what is freed below (errors ignored)
    drop_graphs();
    cudaFree(scratch_);
    cudaFree(error_flags_);
    cudaFree(cublas_workspace_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }
  bool host_memory() const override { return false; }

  std::string unsupported_reason(const OpCall& call) const override { return cuda_unsupported_reason(call); }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");  // 256-byte aligned
    check(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
    wait();
    return p;
  }
  void deallocate(void* ptr) override { cudaFree(ptr); }
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
    reserve_scratch(cuda_scratch_bytes(call));
    cuda_run(call, context());
  }

  void run_graph(const std::vector<OpCall>& calls) override {
    size_t need = 0;
    for (const OpCall& c : calls) need = std::max(need, cuda_scratch_bytes(c));
    reserve_scratch(need);
    if (!graphs_enabled_) {
      for (const OpCall& c : calls) cuda_run(c, context());
      return;
    }
    const std::string sig = signature(calls);
    if (graphs_.size() >= kMaxGraphs && !graphs_.count(sig)) drop_graphs();  // bounded, simplest policy
    Recorded& rec = graphs_[sig];
    if (rec.exec) {
      check(cudaGraphLaunch(rec.exec, stream_), "cudaGraphLaunch");
      return;
    }
    if (++rec.seen < 2) {  // first sight: run eagerly (one-off runs such as a prompt chunk stay eager)
      for (const OpCall& c : calls) cuda_run(c, context());
      return;
    }
    record(calls, rec);
    check(cudaGraphLaunch(rec.exec, stream_), "cudaGraphLaunch");
  }

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
    int seen = 0;
    cudaGraphExec_t exec = nullptr;
  };

  CudaContext context() const { return CudaContext{stream_, cublas_, scratch_, error_flags_}; }
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

  void record(const std::vector<OpCall>& calls, Recorded& rec) {
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
    const cudaError_t err = cudaGraphInstantiate(&rec.exec, graph, 0);
    cudaGraphDestroy(graph);
    check(err, "cudaGraphInstantiate");
  }

  void drop_graphs() {
    for (auto& [sig, rec] : graphs_)
      if (rec.exec) cudaGraphExecDestroy(rec.exec);
    graphs_.clear();
  }

  int device_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  uint32_t* error_flags_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  bool graphs_enabled_ = true;
  std::map<std::string, Recorded> graphs_;
};

}  // namespace
}  // namespace longvq

// The module's entry points (engine/cuda_module.cpp loads them with dlopen).
extern "C" int longvq_cuda_module_devices(std::string* why_none) { return longvq_cuda_device_count(why_none); }
extern "C" longvq::Backend* longvq_cuda_module_make_backend(std::string* error) {
  try {
    return new longvq::CudaBackend();
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}
