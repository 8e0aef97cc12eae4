// mean_pool: rep[b] = mean over t < len[b] of x[b, t] (longvq-model.md §5). One thread per
// output element (b, i), grid-stride; it sums its column over the valid rows in order (reads
// are coalesced across threads of consecutive i), accumulating in fp64.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

__global__ void mean_pool_kernel(const float* __restrict__ x, const int32_t* __restrict__ lengths, int64_t B,
                                 int64_t n, int64_t d, float* __restrict__ rep) {
  LONGVQ_GRID_STRIDE(idx, B * d) {
    const int64_t b = idx / d, i = idx % d;
    const int64_t len = valid_length(lengths, b, n);
    double s = 0.0;  // long rows (thousands of positions): fp64 keeps the mean exact to fp32
    for (int64_t t = 0; t < len; ++t) s += x[(b * n + t) * d + i];       // (x * mask).sum(1)
    rep[idx] = len > 0 ? static_cast<float>(s / static_cast<double>(len)) : 0.0f;  // / lengths (0 when empty)
  }
}

}  // namespace

void mean_pool(const OpCall& c, const CudaContext& ctx) {
  const TensorRef& xt = c.in(MeanPoolIn::x);
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2];
  if (B * d == 0) return;
  const int32_t* lengths = c.in_as<const int32_t>(MeanPoolIn::lengths);
  mean_pool_kernel<<<elementwise_blocks(B * d), kElementwiseThreads, 0, stream_of(ctx)>>>(
      xt.as<const float>(), lengths, B, n, d, c.out_as<float>(MeanPoolOut::rep));
  check_launch("mean_pool_kernel");
}

}  // namespace longvq::cuda
