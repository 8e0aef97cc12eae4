// mul, add, gated_residual (longvq-model.md §2.1, §2.3). One thread per element, grid-stride,
// 256 threads per block. The output may alias an input (op_allows_in_place): each thread reads
// its element's inputs before it writes, and no thread touches another's element.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

__global__ void mul_kernel(const float* a, const float* b, float* y, int64_t n) {
  LONGVQ_GRID_STRIDE(i, n) y[i] = a[i] * b[i];  // O ⊙ R
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  LONGVQ_GRID_STRIDE(i, n) y[i] = a[i] + b[i];  // X + fc2(φ(fc1(·)))
}

__global__ void gated_residual_kernel(const float* res, const float* u, const float* hx, const float* hp, float* y,
                                      int64_t n) {
  LONGVQ_GRID_STRIDE(i, n) {
    const float hh = silu_f(hx[i] + hp[i]);  // Hh = φ(HX + h_proj(O ⊙ R))
    const float r = res[i];
    y[i] = r + u[i] * (hh - r);              // Y = res + u ⊙ (Hh − res)
  }
}

}  // namespace

void mul(const OpCall& c, const CudaContext& ctx) {
  const int64_t n = c.in(BinaryIn::a).numel();
  if (n == 0) return;
  mul_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(BinaryIn::a), c.in_as<const float>(BinaryIn::b), c.out_as<float>(OutY::y), n);
  check_launch("mul_kernel");
}

void add(const OpCall& c, const CudaContext& ctx) {
  const int64_t n = c.in(BinaryIn::a).numel();
  if (n == 0) return;
  add_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(BinaryIn::a), c.in_as<const float>(BinaryIn::b), c.out_as<float>(OutY::y), n);
  check_launch("add_kernel");
}

void gated_residual(const OpCall& c, const CudaContext& ctx) {
  const int64_t n = c.in(GatedResidualIn::res).numel();
  if (n == 0) return;
  gated_residual_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(GatedResidualIn::res), c.in_as<const float>(GatedResidualIn::u),
      c.in_as<const float>(GatedResidualIn::hx), c.in_as<const float>(GatedResidualIn::hp), c.out_as<float>(OutY::y), n);
  check_launch("gated_residual_kernel");
}

}  // namespace longvq::cuda
