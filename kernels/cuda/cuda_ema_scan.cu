// ema: X' = φ(EMA(x) + ω·x), causal or bidirectional, optionally continued from a state
// (longvq-model.md §2.2), as a chunked parallel scan of the recurrence H ← q⊙H + pb·x̃: every
// stateful call (decode, prefill chunks) and whole sequences shorter than the FFT form's
// threshold (cuda_ema_fft.cu chooses).
//
// Launch: one block per (channel c, batch row b), kChunks = 64 threads (2 warps). Thread p owns
// the time chunk [p·L, (p+1)·L), L = ⌈n/64⌉. The N orders are taken kGroup at a time (their
// coefficients and states live in registers). For each group and direction:
//   1. every thread scans its chunk from H = 0, keeping the chunk's end state and q^len;
//   2. thread j < kGroup chains the chunks for order j: start(k+1) = q^len(k)·start(k) + end(k),
//      from the state (stateful) or 0; the last value is the state after the whole call;
//   3. every thread rescans its chunk from its start state and adds Σ_n g·H into y.
// The backward direction (bidirectional) runs the same scan from the end with rows d..2d−1
// (lag 0 counted twice, as MEGA); then each thread applies y = φ(y + ω·x) on its chunk.
// Shared memory: 2 · 64 · kGroup floats. Every y element is written by one thread only. Pads
// (t ≥ lengths[b]) enter the sum as 0; the ω term uses the raw x [MEGA]. Sums are fp32 in a
// fixed order, so results are deterministic.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

constexpr int kChunks = 64;
constexpr int kGroup = 8;

__global__ void ema_kernel(const float* __restrict__ x, const float* __restrict__ q, const float* __restrict__ pb,
                           const float* __restrict__ g, const float* __restrict__ omega,
                           const int32_t* __restrict__ lengths, float* __restrict__ states,
                           const int32_t* __restrict__ state_rows, float* __restrict__ y,
                           int64_t n, int64_t d, int64_t N, bool bidir) {
  __shared__ float chunk_pow[kChunks][kGroup];    // q^len of each chunk
  __shared__ float chunk_state[kChunks][kGroup];  // pass 1: end state from 0; pass 2: start state
  const int64_t c = blockIdx.x, b = blockIdx.y;
  const int p = threadIdx.x;
  const int64_t L = (n + kChunks - 1) / kChunks;
  const int64_t t_lo = min64(n, p * L), t_hi = min64(n, t_lo + L);
  const int64_t len = valid_length(lengths, b, n);
  float* state = states ? states + (state_rows ? state_rows[b] : b) * d * N : nullptr;  // this row's H [d, N]
  auto x_at = [&](int64_t t) { return x[(b * n + t) * d + c]; };
  auto x_masked = [&](int64_t t) { return t < len ? x_at(t) : 0.0f; };  // xm = x * mask
  bool first = true;

  for (int dir = 0; dir < (bidir ? 2 : 1); ++dir) {
    const int64_t row = dir * d + c;  // coefficient row: c (forward), d + c (backward)
    for (int64_t m0 = 0; m0 < N; m0 += kGroup) {
      const int G = static_cast<int>(min64(kGroup, N - m0));
      float qq[kGroup], pp[kGroup], gg[kGroup], h[kGroup], a[kGroup];
      for (int j = 0; j < kGroup; ++j) {
        const bool on = j < G;
        qq[j] = on ? q[row * N + m0 + j] : 0.0f;
        pp[j] = on ? pb[row * N + m0 + j] : 0.0f;
        gg[j] = on ? g[row * N + m0 + j] : 0.0f;
        h[j] = 0.0f;
        a[j] = 1.0f;
      }
      // 1. local scan from zero
      for (int64_t k = 0; k < t_hi - t_lo; ++k) {
        const float xv = x_masked(dir == 0 ? t_lo + k : t_hi - 1 - k);
        for (int j = 0; j < kGroup; ++j) {
          h[j] = qq[j] * h[j] + pp[j] * xv;  // H ← q⊙H + pb·x̃
          a[j] *= qq[j];
        }
      }
      for (int j = 0; j < kGroup; ++j) {
        chunk_pow[p][j] = a[j];
        chunk_state[p][j] = h[j];
      }
      __syncthreads();
      // 2. chain the chunks (in scan order) for order m0 + p
      if (p < G) {
        const bool carry = dir == 0 && state;
        float H = carry ? state[c * N + m0 + p] : 0.0f;
        for (int i = 0; i < kChunks; ++i) {
          const int k = dir == 0 ? i : kChunks - 1 - i;
          const float end = chunk_state[k][p];
          chunk_state[k][p] = H;
          H = chunk_pow[k][p] * H + end;
        }
        if (carry) state[c * N + m0 + p] = H;  // the state after the call
      }
      __syncthreads();
      // 3. rescan from the chunk's start state, y += Σ_n g·H
      for (int j = 0; j < kGroup; ++j) h[j] = chunk_state[p][j];
      for (int64_t k = 0; k < t_hi - t_lo; ++k) {
        const int64_t t = dir == 0 ? t_lo + k : t_hi - 1 - k;
        const float xv = x_masked(t);
        float acc = 0.0f;
        for (int j = 0; j < kGroup; ++j) {
          h[j] = qq[j] * h[j] + pp[j] * xv;
          acc += gg[j] * h[j];
        }
        float* yt = y + (b * n + t) * d + c;
        *yt = first ? acc : *yt + acc;
      }
      first = false;
      __syncthreads();  // the shared arrays are reused by the next group
    }
  }
  for (int64_t t = t_lo; t < t_hi; ++t) {
    float* yt = y + (b * n + t) * d + c;
    *yt = silu_f((first ? 0.0f : *yt) + omega[c] * x_at(t));  // φ(y + ω·x), raw x (y = 0 when N = 0)
  }
}

}  // namespace

void ema_scan(const OpCall& c, const CudaContext& ctx) {
  using I = EmaIn;
  const int64_t B = c.in(I::x).shape[0], n = c.in(I::x).shape[1], d = c.in(I::x).shape[2];
  const int64_t N = c.in(I::q).shape[1];
  if (B * n * d == 0) return;
  if (B > 65535) throw std::runtime_error("ema: more than 65535 sequences in one call; split the batch");
  const int32_t* lengths = c.params.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  float* state = c.params.stateful ? c.in_as<float>(I::state) : nullptr;
  const dim3 grid(static_cast<unsigned>(d), static_cast<unsigned>(B));
  ema_kernel<<<grid, kChunks, 0, stream_of(ctx)>>>(
      c.in_as<const float>(I::x), c.in_as<const float>(I::q), c.in_as<const float>(I::pb), c.in_as<const float>(I::g),
      c.in_as<const float>(I::omega), lengths, state, c.in_as<const int32_t>(I::state_rows), c.out_as<float>(OutY::y), n, d, N,
                                                   c.params.bidirectional);
  check_launch("ema_kernel");
}

}  // namespace longvq::cuda
