// vq_codes: c = argmin_s ||k − C_s||² (ties → lowest s), as ||C_s||² − 2·k·C_s.
//
// Identical codes on every backend (design page invariant 6) need identical arithmetic:
// ref_vq_code sums both dot products in fp64, i ascending. Each product of two floats is exact
// in fp64, so the fused multiply-add nvcc emits rounds exactly as the reference's add does, and
// 2·dot is exact: the distances are bit-identical to the reference's.
// Launch: one block of 128 threads per key (grid-stride over keys); thread s' scores codes
// s', s'+128, ... in ascending order keeping the first minimum, then a shared-memory tree
// combines (distance, code) pairs preferring the lower code on ties.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void vq_codes_kernel(const float* __restrict__ k, const float* __restrict__ C, int64_t T, int64_t S,
                                int64_t e, int32_t* __restrict__ codes) {
  __shared__ double best_dist[kThreads];
  __shared__ int32_t best_code[kThreads];
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float* kt = k + t * e;
    double bd = INFINITY;
    int32_t bc = -1;
    for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
      const float* cs = C + s * e;
      double norm2 = 0.0, dot = 0.0;
      for (int64_t i = 0; i < e; ++i) norm2 += static_cast<double>(cs[i]) * cs[i];  // ||C_s||², i ascending
      for (int64_t i = 0; i < e; ++i) dot += static_cast<double>(kt[i]) * cs[i];    // K·C_s, i ascending
      double dist = norm2 - 2.0 * dot;
      // NaN as the reference's sequential scan sees it: at s = 0 it is kept, later it never wins.
      if (isnan(dist)) dist = s == 0 ? -INFINITY : INFINITY;
      if (bc < 0 || dist < bd) {  // s ascending within the thread: the first minimum wins
        bd = dist;
        bc = static_cast<int32_t>(s);
      }
    }
    best_dist[threadIdx.x] = bd;
    best_code[threadIdx.x] = bc;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half >>= 1) {
      if (threadIdx.x < half) {
        const int o = threadIdx.x + half;
        const int32_t oc = best_code[o];
        const bool take = oc >= 0 && (best_code[threadIdx.x] < 0 || best_dist[o] < best_dist[threadIdx.x] ||
                                      (best_dist[o] == best_dist[threadIdx.x] && oc < best_code[threadIdx.x]));
        if (take) {
          best_dist[threadIdx.x] = best_dist[o];
          best_code[threadIdx.x] = oc;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) codes[t] = best_code[0];
    __syncthreads();  // before the next key reuses the arrays
  }
}

}  // namespace

void vq_codes(const OpCall& c, const CudaContext& ctx) {
  const TensorRef& kt = c.in(VqCodesIn::k);
  const int64_t T = kt.rows(), e = kt.cols(), S = c.in(VqCodesIn::codebook).shape[0];
  if (T == 0) return;
  const int blocks = static_cast<int>(T < 65535 ? T : 65535);
  vq_codes_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(
      kt.as<const float>(), c.in_as<const float>(VqCodesIn::codebook), T, S, e, c.out_as<int32_t>(VqCodesOut::codes));
  check_launch("vq_codes_kernel");
}

}  // namespace longvq::cuda
