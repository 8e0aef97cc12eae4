// mix_gates: §2.1 between mx_proj and the attention (model.py Mix.gates). One thread per
// element of the mx_proj row (T · (2d+e+h) threads, grid-stride, 256 per block): column j
// decides which output it feeds. Reads each input element once, writes one output element.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

__global__ void mix_gates_kernel(const float* __restrict__ mx, const float* __restrict__ scale,
                                 const float* __restrict__ offset, int64_t T, int64_t d, int64_t e, int64_t h,
                                 float* __restrict__ u, float* __restrict__ q, float* __restrict__ k,
                                 float* __restrict__ r, float* __restrict__ hx) {
  const int64_t cols = 2 * d + e + h;
  LONGVQ_GRID_STRIDE(idx, T * cols) {
    const int64_t t = idx / cols, j = idx % cols;
    const float x = mx[idx];
    if (j < d) {
      u[t * d + j] = sigmoid_f(x);                                // u = σ(mx[..., :d])
    } else if (j < d + e) {
      const int64_t i = j - d;
      const float z = silu_f(x);                                  // Z = φ(mx[..., d:d+e])
      q[t * e + i] = fmaf(z, scale[i], offset[i]);                // Q = Z ⊙ qk_scale[0] + qk_offset[0]
      k[t * e + i] = fmaf(z, scale[e + i], offset[e + i]);        // K = Z ⊙ qk_scale[1] + qk_offset[1]
    } else if (j < d + e + h) {
      r[t * h + (j - d - e)] = silu_f(x);                         // R = φ(mx[..., d+e:d+e+h])
    } else {
      hx[t * d + (j - d - e - h)] = x;                            // HX = mx[..., d+e+h:]
    }
  }
}

}  // namespace

void mix_gates(const OpCall& c, const CudaContext& ctx) {
  using I = MixGatesIn;
  using O = MixGatesOut;
  const int64_t T = c.in(I::mx).rows();
  const int64_t d = c.out(O::u).cols(), e = c.out(O::q).cols(), h = c.out(O::r).cols();
  const int64_t n = T * (2 * d + e + h);
  if (n == 0) return;
  mix_gates_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(I::mx), c.in_as<const float>(I::qk_scale), c.in_as<const float>(I::qk_offset), T, d, e, h,
      c.out_as<float>(O::u), c.out_as<float>(O::q), c.out_as<float>(O::k), c.out_as<float>(O::r), c.out_as<float>(O::hx));
  check_launch("mix_gates_kernel");
}

}  // namespace longvq::cuda
