// Helpers shared by the CUDA kernels: error checks, launch geometry, activations, reductions.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/ops/op.h"
#include "kernels/cuda/cuda_ops.h"

namespace longvq::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(err));
}
// After a launch: configuration errors (too many threads, too much shared memory) show here.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline cudaStream_t stream_of(const CudaContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

// Elementwise kernels: one thread per element, 256 threads per block (8 warps: enough resident
// blocks per SM to hide memory latency), grid-stride so any size fits a capped grid.
constexpr int kElementwiseThreads = 256;
inline int elementwise_blocks(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<int>(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks);
}
#define LONGVQ_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// Activations in fp32 with the accurate expf/erff (not the __expf intrinsics): a few ulp.
__device__ inline float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ inline float activate_f(Activation a, float x) {
  switch (a) {
    case Activation::none: return x;
    case Activation::silu: return silu_f(x);
    case Activation::gelu: return gelu_f(x);
  }
  return x;
}

// min/max of int64_t (CUDA's min/max overloads do not all take `long`).
__device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ inline int64_t valid_length(const int32_t* lengths, int64_t b, int64_t n) {
  if (!lengths) return n;
  const int64_t l = lengths[b];
  return l < 0 ? 0 : l > n ? n : l;
}

__device__ inline void raise_error(uint32_t* flags, uint32_t bit) { atomicOr(flags, bit); }

// Block-wide sum / max for blockDim.x a multiple of 32 (≤ 1024): a warp shuffle tree, then the
// warp results through shared memory. Every thread gets the result. `red` holds 32 floats; the
// call starts and ends with a barrier, so `red` may be reused right after.
__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ inline float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < warps ? red[lane] : 0.0f;
  v = warp_sum(v);
  __syncthreads();
  return v;
}
__device__ inline float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < warps ? red[lane] : -INFINITY;
  v = warp_max(v);
  __syncthreads();
  return v;
}

// Per-family launchers (one .cu file each), called by cuda_run.
void embed_tokens(const OpCall&, const CudaContext&);
void embed_real(const OpCall&, const CudaContext&);
void norm(const OpCall&, const CudaContext&);
void linear(const OpCall&, const CudaContext&);
void ema(const OpCall&, const CudaContext&);       // the FFT form or the scan (cuda_ema_fft.cu)
void ema_scan(const OpCall&, const CudaContext&);  // the chunked scan (cuda_ema_scan.cu)
void mix_gates(const OpCall&, const CudaContext&);
void vq_codes(const OpCall&, const CudaContext&);
void vq_attention(const OpCall&, const CudaContext&);
void mul(const OpCall&, const CudaContext&);
void add(const OpCall&, const CudaContext&);
void gated_residual(const OpCall&, const CudaContext&);
void mean_pool(const OpCall&, const CudaContext&);

// cuda_prepare's part for each op that has one (cuda_ops.h): the scratch bytes the call needs.
size_t ema_prepare(const OpCall&, const CudaContext&);
size_t vq_attention_prepare(const OpCall&, const CudaContext&);
std::string vq_attention_unsupported_reason(const OpCall&);

}  // namespace longvq::cuda
