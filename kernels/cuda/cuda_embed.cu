// embed_tokens and embed_real (longvq-model.md §5). One thread per output element (t, i):
// grid-stride over T·d, 256 threads per block; reads one id or value and one table entry.
// A table of width d = 0 has no output elements, but its ids are still checked (one thread per
// id), so a bad token is an error whatever the model's width, as on the CPU.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

__global__ void embed_tokens_kernel(const int32_t* __restrict__ ids, const float* __restrict__ table, float scale,
                                    int64_t T, int64_t V, int64_t d, float* __restrict__ out, uint32_t* error) {
  LONGVQ_GRID_STRIDE(idx, T * d) {
    const int64_t t = idx / d, i = idx % d;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {  // out of range: a zero row, and the backend reports the error
      out[idx] = 0.0f;
      if (i == 0) raise_error(error, kCudaErrTokenRange);
      continue;
    }
    out[idx] = scale * table[id * d + i];  // x = scale · E[token]
  }
}

// d = 0: nothing to write; every id is still range-checked.
__global__ void check_token_ids_kernel(const int32_t* __restrict__ ids, int64_t T, int64_t V, uint32_t* error) {
  LONGVQ_GRID_STRIDE(t, T) {
    if (ids[t] < 0 || ids[t] >= V) raise_error(error, kCudaErrTokenRange);
  }
}

__global__ void embed_real_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, int64_t T, int64_t d, float* __restrict__ out) {
  LONGVQ_GRID_STRIDE(idx, T * d) {
    const int64_t t = idx / d, i = idx % d;
    out[idx] = fmaf(x[t], w[i], b[i]);  // x.unsqueeze(-1) * weight + bias
  }
}

}  // namespace

void embed_tokens(const OpCall& c, const CudaContext& ctx) {
  const TensorRef& table = c.in(EmbedTokensIn::table);
  const int64_t T = c.in(EmbedTokensIn::tokens).numel(), V = table.shape[0], d = table.shape[1];
  if (T == 0) return;
  if (d == 0) {
    check_token_ids_kernel<<<elementwise_blocks(T), kElementwiseThreads, 0, stream_of(ctx)>>>(
        c.in_as<const int32_t>(EmbedTokensIn::tokens), T, V, ctx.error_flags);
    check_launch("check_token_ids_kernel");
    return;
  }
  embed_tokens_kernel<<<elementwise_blocks(T * d), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const int32_t>(EmbedTokensIn::tokens), table.as<const float>(), c.params.scale, T, V, d,
      c.out_as<float>(OutEmbed::out),
      ctx.error_flags);
  check_launch("embed_tokens_kernel");
}

void embed_real(const OpCall& c, const CudaContext& ctx) {
  using I = EmbedRealIn;
  const int64_t T = c.in(I::x).numel(), d = c.in(I::weight).shape[0];
  if (T * d == 0) return;
  embed_real_kernel<<<elementwise_blocks(T * d), kElementwiseThreads, 0, stream_of(ctx)>>>(
      c.in_as<const float>(I::x), c.in_as<const float>(I::weight), c.in_as<const float>(I::bias), T, d,
      c.out_as<float>(OutEmbed::out));
  check_launch("embed_real_kernel");
}

}  // namespace longvq::cuda
