// linear: y = act(x·Wᵀ + b), W stored [out, in] (PyTorch nn.Linear).
//
// The product goes through cuBLAS SGEMM in fp32 (CUBLAS_DEFAULT_MATH: no TF32, see the
// backend), then one elementwise epilogue adds the bias and applies the activation. cuBLAS is
// column-major, so the row-major [T, out] result is its [out, T] column-major matrix:
//   yᵀ = W · xᵀ  →  C(out×T) = op(A)·B with A = the W buffer read as (in×out), op = T, lda = in;
//   B = the x buffer read as (in×T), ldb = in; ldc = out.
// At T = 1 this is a matrix-vector product; cuBLAS picks its GEMV-shaped kernels itself, so a
// row decoded alone and the same row inside a prefill may be summed in different orders.
//
// LONGVQ_CUDA_LINEAR=fixed (CudaOptions::linear_fixed_order) replaces cuBLAS by a product with
// one fixed reduction order per output: one warp per output column o and a tile of kFixedRows
// rows; lane l sums x[t,k]·W[o,k] over k ≡ l (mod 32) in increasing k with FMA, then a butterfly
// over the lanes (xor 16, 8, 4, 2, 1) adds the 32 partial sums. The order depends on K only, so
// a row gives the same bits alone (decode, T = 1) as among any number of others (prefill,
// batched decode). W is read once per tile of rows: slower than cuBLAS for large T.
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

constexpr int kFixedRows = 8;   // rows per warp: W is read once per tile
constexpr int kFixedWarps = 8;  // outputs per block (256 threads)

__global__ void linear_fixed_kernel(const float* __restrict__ x, const float* __restrict__ W, float* __restrict__ y,
                                    int64_t T, int64_t K, int64_t N) {
  const int lane = threadIdx.x & 31;
  const int64_t o = blockIdx.x * int64_t{kFixedWarps} + (threadIdx.x >> 5);
  if (o >= N) return;  // the whole warp: o is the same in all its lanes
  const float* w = W + o * K;
  for (int64_t t0 = blockIdx.y * int64_t{kFixedRows}; t0 < T; t0 += int64_t{gridDim.y} * kFixedRows) {
    const int rows = static_cast<int>(min64(kFixedRows, T - t0));
    float acc[kFixedRows];
#pragma unroll
    for (int r = 0; r < kFixedRows; ++r) acc[r] = 0.0f;
    for (int64_t k = lane; k < K; k += 32) {
      const float wk = w[k];
#pragma unroll
      for (int r = 0; r < kFixedRows; ++r)
        if (r < rows) acc[r] = fmaf(x[(t0 + r) * K + k], wk, acc[r]);  // Σ over k ≡ lane (mod 32), in order
    }
#pragma unroll
    for (int r = 0; r < kFixedRows; ++r) {
      const float v = warp_sum(acc[r]);  // the same butterfly for every row and every T
      if (lane == 0 && r < rows) y[(t0 + r) * N + o] = v;
    }
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
  } else if (ctx.options.linear_fixed_order) {
    const int64_t row_tiles = (T + kFixedRows - 1) / kFixedRows;
    const dim3 grid(static_cast<unsigned>((N + kFixedWarps - 1) / kFixedWarps),
                    static_cast<unsigned>(row_tiles < 65535 ? row_tiles : 65535));
    linear_fixed_kernel<<<grid, 32 * kFixedWarps, 0, stream_of(ctx)>>>(xt.as<const float>(), wt.as<const float>(), y, T,
                                                                        K, N);
    check_launch("linear_fixed_kernel");
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
