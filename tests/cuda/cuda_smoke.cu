#include "tests/cuda/cuda_smoke.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include <memory>
#include <stdexcept>

namespace {

void check(cudaError_t err, const char* call) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(call) + " failed: " + cudaGetErrorString(err));
}

void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(call) + " failed: " + cublasGetStatusString(status));
}

void check(cufftResult result, const char* call) {
  // cuFFT has no status-to-string function; the code is listed in cufft.h.
  if (result != CUFFT_SUCCESS)
    throw std::runtime_error(std::string(call) + " failed: cufftResult " +
                             std::to_string(static_cast<int>(result)));
}

#define LONGVQ_CHECK(call) check((call), #call)

// Owns n elements of device memory; freed even when a later call throws.
template <typename T>
class device_buffer {
 public:
  explicit device_buffer(size_t n) : n_(n) {
    LONGVQ_CHECK(cudaMalloc(&ptr_, n * sizeof(T)));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(ptr_); }  // errors here cannot be reported; ignore

  T* get() const { return ptr_; }

  void upload(const T* host) {
    LONGVQ_CHECK(cudaMemcpy(ptr_, host, n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host) const {
    LONGVQ_CHECK(cudaMemcpy(host, ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  T* ptr_ = nullptr;
  size_t n_;
};

// Owns a single-batch 1-D cuFFT plan.
class fft_plan {
 public:
  fft_plan(int n, cufftType type) { LONGVQ_CHECK(cufftPlan1d(&handle_, n, type, 1)); }
  fft_plan(const fft_plan&) = delete;
  fft_plan& operator=(const fft_plan&) = delete;
  ~fft_plan() { cufftDestroy(handle_); }

  cufftHandle get() const { return handle_; }

 private:
  cufftHandle handle_ = 0;
};

__global__ void silu_kernel(const float* __restrict__ x, float* __restrict__ y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] / (1.0f + expf(-x[i]));
}

}  // namespace

int longvq_cuda_device_count(std::string* why_none) {
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

std::vector<float> longvq_cuda_silu(const std::vector<float>& x) {
  const int n = static_cast<int>(x.size());
  std::vector<float> y(x.size());
  if (n == 0) return y;
  device_buffer<float> d_x(x.size()), d_y(x.size());
  d_x.upload(x.data());
  // One thread per element, 256 per block (a multiple of the 32-thread warp that keeps
  // several blocks resident per SM); the grid rounds up and the kernel guards i < n.
  const int block = 256;
  const int grid = (n + block - 1) / block;
  silu_kernel<<<grid, block>>>(d_x.get(), d_y.get(), n);
  LONGVQ_CHECK(cudaGetLastError());       // launch-configuration errors
  LONGVQ_CHECK(cudaDeviceSynchronize());  // errors raised while the kernel ran
  d_y.download(y.data());
  return y;
}

std::vector<float> longvq_cuda_sgemv(const std::vector<float>& a, int rows, int cols,
                                     const std::vector<float>& x) {
  if (rows <= 0 || cols <= 0 || a.size() != size_t(rows) * cols || x.size() != size_t(cols))
    throw std::invalid_argument("longvq_cuda_sgemv: shape mismatch");
  device_buffer<float> d_a(a.size()), d_x(x.size()), d_y(rows);
  d_a.upload(a.data());
  d_x.upload(x.data());

  cublasHandle_t raw = nullptr;
  LONGVQ_CHECK(cublasCreate(&raw));
  const std::unique_ptr<cublasContext, decltype(&cublasDestroy)> handle(raw, &cublasDestroy);
  // cuBLAS is column-major: the row-major rows x cols matrix is its cols x rows
  // transpose, so A x is op = T on that view with leading dimension cols.
  const float alpha = 1.0f, beta = 0.0f;
  LONGVQ_CHECK(cublasSgemv(handle.get(), CUBLAS_OP_T, cols, rows, &alpha, d_a.get(), cols,
                           d_x.get(), 1, &beta, d_y.get(), 1));
  std::vector<float> y(rows);
  d_y.download(y.data());  // cudaMemcpy on the default stream waits for sgemv
  return y;
}

longvq_cuda_fft_result longvq_cuda_fft_round_trip(const std::vector<float>& x) {
  const int n = static_cast<int>(x.size());
  if (n < 2) throw std::invalid_argument("longvq_cuda_fft_round_trip: need at least 2 samples");
  const size_t bins = x.size() / 2 + 1;
  device_buffer<float> d_x(x.size()), d_back(x.size());
  device_buffer<cufftComplex> d_spec(bins);
  d_x.upload(x.data());

  const fft_plan r2c(n, CUFFT_R2C), c2r(n, CUFFT_C2R);
  LONGVQ_CHECK(cufftExecR2C(r2c.get(), d_x.get(), d_spec.get()));
  // C2R overwrites its input, so keep a host copy of the spectrum first.
  std::vector<cufftComplex> spec(bins);
  d_spec.download(spec.data());
  LONGVQ_CHECK(cufftExecC2R(c2r.get(), d_spec.get(), d_back.get()));

  longvq_cuda_fft_result out;
  out.round_trip.resize(x.size());
  d_back.download(out.round_trip.data());
  for (float& v : out.round_trip) v /= float(n);  // cuFFT transforms are unnormalised
  out.spectrum.reserve(bins);
  for (const cufftComplex& c : spec) out.spectrum.emplace_back(c.x, c.y);
  return out;
}
