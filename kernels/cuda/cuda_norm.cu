// The four norms over the last axis (longvq-model.md §2.4). One block of 128 threads per row:
// each thread sums a strided slice of the row, block_sum combines them (two passes for
// layernorm: mean, then the biased variance around it, as the reference). Grid = rows (capped,
// the block loops over rows beyond 65535·... via a row stride).
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void norm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                            const float* __restrict__ rmean, const float* __restrict__ rvar, int64_t T, int64_t d,
                            NormKind kind, bool affine, float eps, float* __restrict__ y) {
  __shared__ float red[32];
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float* xr = x + t * d;
    float* yr = y + t * d;
    if (kind == NormKind::layernorm) {
      float s = 0.0f;
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
      const float mean = block_sum(s, red) / static_cast<float>(d);      // mean = x.mean(-1)
      float v = 0.0f;
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) v += (xr[i] - mean) * (xr[i] - mean);
      const float var = block_sum(v, red) / static_cast<float>(d);       // ((x − mean)²).mean(-1)
      const float rstd = rsqrtf(var + eps);
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float o = (xr[i] - mean) * rstd;                            // (x − mean)/sqrt(var + eps)
        yr[i] = affine ? fmaf(o, w[i], bias[i]) : o;                      // ·weight + bias
      }
    } else if (kind == NormKind::batchnorm) {
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float o = (xr[i] - rmean[i]) * rsqrtf(rvar[i] + eps);       // (x − rm)/sqrt(rv + eps)
        yr[i] = affine ? fmaf(o, w[i], bias[i]) : o;                      // ·weight + bias
      }
    } else {  // scalenorm, rmsnorm
      float s = 0.0f;
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i] * xr[i];
      const float r = rsqrtf(block_sum(s, red) / static_cast<float>(d) + eps);  // 1/sqrt(mean(x²) + eps)
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float o = xr[i] * r;
        if (affine) o *= kind == NormKind::scalenorm ? w[0] : w[i];       // ·scalar | ·weight
        yr[i] = o;
      }
    }
  }
}

}  // namespace

void norm(const OpCall& c, const CudaContext& ctx) {
  using I = NormIn;
  const int64_t T = c.in(I::x).rows(), d = c.in(I::x).cols();
  if (T * d == 0) return;
  const int blocks = static_cast<int>(T < 65535 ? T : 65535);
  norm_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(I::x), c.in_as<const float>(I::weight), c.in_as<const float>(I::bias),
      c.in_as<const float>(I::running_mean), c.in_as<const float>(I::running_var), T, d, c.params.norm, c.params.affine,
      c.params.eps, c.out_as<float>(OutY::y));
  check_launch("norm_kernel");
}

}  // namespace longvq::cuda
