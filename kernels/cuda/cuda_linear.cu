// linear: y = act(x·Wᵀ + b), W stored [out, in] (PyTorch nn.Linear).
//
// The product goes through cuBLAS SGEMM in fp32 (CUBLAS_DEFAULT_MATH: no TF32, see the
// backend), then one elementwise epilogue adds the bias and applies the activation. cuBLAS is
// column-major, so the row-major [T, out] result is its [out, T] column-major matrix:
//   yᵀ = W · xᵀ  →  C(out×T) = op(A)·B with A = the W buffer read as (in×out), op = T, lda = in;
//   B = the x buffer read as (in×T), ldb = in; ldc = out.
// At T = 1 this is a matrix-vector product; cuBLAS picks its GEMV-shaped kernels itself.
#include <cublas_v2.h>

#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + " failed: " + cublasGetStatusString(status));
}

// One thread per output element, grid-stride, 256 per block.
__global__ void bias_activation_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t T, int64_t N,
                                       Activation act) {
  LONGVQ_GRID_STRIDE(idx, T * N) {
    const float v = bias ? y[idx] + bias[idx % N] : y[idx];  // + b
    y[idx] = activate_f(act, v);                              // act(·): none | silu | gelu
  }
}

}  // namespace

void linear(const OpCall& c, const CudaContext& ctx) {
  const TensorRef &xt = c.in(LinearIn::x), &wt = c.in(LinearIn::W);  // W dense: CUDA prepares no layout
  const int64_t T = xt.rows(), K = xt.cols(), N = wt.shape[0];
  float* y = c.out_as<float>(OutY::y);
  if (T * N == 0) return;
  if (T > INT32_MAX || K > INT32_MAX || N > INT32_MAX)
    throw std::runtime_error("linear: a dimension exceeds cuBLAS's 32-bit sizes; use the CPU backend");
  if (K == 0) {  // an empty sum: y = act(b)
    check(cudaMemsetAsync(y, 0, static_cast<size_t>(T * N) * sizeof(float), stream_of(ctx)), "cudaMemsetAsync");
  } else {
    const float alpha = 1.0f, beta = 0.0f;
    check_cublas(cublasSgemm(static_cast<cublasHandle_t>(ctx.cublas), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N),
                             static_cast<int>(T), static_cast<int>(K), &alpha, wt.as<const float>(), static_cast<int>(K),
                             xt.as<const float>(), static_cast<int>(K), &beta, y, static_cast<int>(N)),
                 "cublasSgemm (linear)");
  }
  const float* bias = c.in_as<const float>(LinearIn::b);
  if (!bias && c.params.activation == Activation::none) return;
  bias_activation_kernel<<<elementwise_blocks(T * N), kElementwiseThreads, 0, stream_of(ctx)>>>(
      y, bias, T, N, c.params.activation);
  check_launch("bias_activation_kernel");
}

}  // namespace longvq::cuda
