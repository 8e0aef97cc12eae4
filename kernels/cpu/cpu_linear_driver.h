// What the linear kernels of every weight type share (cpu_linear.cpp: f32 and bf16 panels;
// cpu_linear_q8.cpp: q8_0 panels): the block a microkernel call covers, the accumulator tiles'
// load from y and store back (bias added once, at k_hi == K), the kernel tables per instruction
// set and the GEMV / GEMM drivers that cut the work into such calls. A weight type brings its
// Args (x, W, b, y, T, K, N, NP, panel_bytes) and microkernels; everything here is the same code
// for all of them, so their outputs share one definition of the arithmetic (see cpu_linear.cpp):
// a chain of fmas per output over k = 0..K−1, partial sums through y between K blocks.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "kernels/cpu/cpu_common.h"

namespace longvq::cpu::linear_driver {

constexpr int64_t P = kCpuLinearPanel;  // outputs per panel

// One microkernel call: rows t0..t0+rows−1 (rows ≤ MR; missing rows repeat the last one and are
// not stored), panels p0..p0+NV−1, inputs k_lo..k_hi−1. k_lo > 0 continues the partial sums in y;
// k_hi == K adds the bias.
struct Block {
  int64_t t0;
  int rows;
  int64_t p0, k_lo, k_hi;
};

// Lanes of panel p that are real outputs (the last panel may be padded).
inline int valid_lanes(int64_t N, int64_t p) { return static_cast<int>(std::min<int64_t>(P, N - p * P)); }

template <int MR, class Args>
inline void row_pointers(const Args& a, const Block& blk, const float* (&xr)[MR]) {
  for (int r = 0; r < MR; ++r) xr[r] = a.x + (blk.t0 + std::min(r, blk.rows - 1)) * a.K;
}

// --- accumulator tiles: [MR][NV] panels of 16 lanes ---------------------------------------------
template <int MR, int NV, class Args>
void load_acc_generic(const Args& a, const Block& blk, float (&acc)[MR][NV][P]) {
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) std::fill_n(acc[r][v], P, 0.0f);
  if (blk.k_lo > 0)
    for (int r = 0; r < blk.rows; ++r)
      for (int v = 0; v < NV; ++v) {
        const int64_t p = blk.p0 + v;
        std::copy_n(a.y + (blk.t0 + r) * a.N + p * P, valid_lanes(a.N, p), acc[r][v]);
      }
}

template <int MR, int NV, class Args>
void store_acc_generic(const Args& a, const Block& blk, const float (&acc)[MR][NV][P]) {
  const bool bias = blk.k_hi == a.K && a.b;
  for (int r = 0; r < blk.rows; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t p = blk.p0 + v;
      float* y = a.y + (blk.t0 + r) * a.N + p * P;
      for (int j = 0; j < valid_lanes(a.N, p); ++j) y[j] = bias ? acc[r][v][j] + a.b[p * P + j] : acc[r][v][j];
    }
}

#if defined(__x86_64__) || defined(__i386__)
// AVX2: a panel is two 8-lane halves, masked to the valid lanes.
#define LONGVQ_AVX2 __attribute__((target("avx2,fma")))
template <int NV>
LONGVQ_AVX2 inline void masks_avx2(int64_t N, int64_t p0, __m256i (&mask)[NV][2]) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int v = 0; v < NV; ++v) {
    const int n = valid_lanes(N, p0 + v);
    mask[v][0] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    mask[v][1] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
  }
}

template <int MR, int NV, class Args>
LONGVQ_AVX2 inline void load_acc_avx2(const Args& a, const Block& blk, const __m256i (&mask)[NV][2],
                                      __m256 (&acc)[MR][NV][2]) {
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h)
        acc[r][v][h] = blk.k_lo > 0 && r < blk.rows
                           ? _mm256_maskload_ps(a.y + (blk.t0 + r) * a.N + (blk.p0 + v) * P + 8 * h, mask[v][h])
                           : _mm256_setzero_ps();
}

template <int MR, int NV, class Args>
LONGVQ_AVX2 inline void store_acc_avx2(const Args& a, const Block& blk, const __m256i (&mask)[NV][2],
                                       const __m256 (&acc)[MR][NV][2]) {
  const bool bias = blk.k_hi == a.K && a.b;
  for (int r = 0; r < blk.rows; ++r)
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h) {
        const int64_t o = (blk.p0 + v) * P + 8 * h;
        __m256 out = acc[r][v][h];
        if (bias) out = _mm256_add_ps(out, _mm256_maskload_ps(a.b + o, mask[v][h]));
        _mm256_maskstore_ps(a.y + (blk.t0 + r) * a.N + o, mask[v][h], out);
      }
}
#undef LONGVQ_AVX2

// AVX-512: a panel is one vector.
#define LONGVQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
template <int NV>
LONGVQ_AVX512 inline void masks_avx512(int64_t N, int64_t p0, __mmask16 (&mask)[NV]) {
  for (int v = 0; v < NV; ++v) mask[v] = static_cast<__mmask16>((1u << valid_lanes(N, p0 + v)) - 1u);
}

template <int MR, int NV, class Args>
LONGVQ_AVX512 inline void load_acc_avx512(const Args& a, const Block& blk, const __mmask16 (&mask)[NV],
                                          __m512 (&acc)[MR][NV]) {
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = blk.k_lo > 0 && r < blk.rows
                      ? _mm512_maskz_loadu_ps(mask[v], a.y + (blk.t0 + r) * a.N + (blk.p0 + v) * P)
                      : _mm512_setzero_ps();
}

template <int MR, int NV, class Args>
LONGVQ_AVX512 inline void store_acc_avx512(const Args& a, const Block& blk, const __mmask16 (&mask)[NV],
                                           const __m512 (&acc)[MR][NV]) {
  const bool bias = blk.k_hi == a.K && a.b;
  for (int r = 0; r < blk.rows; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t o = (blk.p0 + v) * P;
      __m512 out = acc[r][v];
      if (bias) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], a.b + o));
      _mm512_mask_storeu_ps(a.y + (blk.t0 + r) * a.N + o, mask[v], out);
    }
}
#undef LONGVQ_AVX512
#endif  // x86

// --- drivers --------------------------------------------------------------------------------
// Per instruction set: GEMV kernels by panel count (1..gemv_nv, one row) and GEMM kernels by panel
// count (1..gemm_nv, mr rows): as many accumulators as the registers hold.
template <class Args>
struct Kernels {
  using Kernel = void (*)(const Args&, const Block&);
  Kernel gemv[9];
  int gemv_nv;
  Kernel gemm[5];
  int gemm_nv, mr;
  // Few rows (batched decode): for T = 2..8, a kernel holding all T rows over few_nv[T] panels
  // and one over a single panel (a group's tail); null where the instruction set has none.
  Kernel few[9] = {};
  int few_nv[9] = {};
  Kernel few1[9] = {};
};

// y[t, o_lo:o_hi] = act(y) for rows t_lo..t_hi−1 of a finished tile (still in cache).
inline void activate_rows(Activation act, float* y, int64_t N, int64_t t_lo, int64_t t_hi, int64_t o_lo,
                          int64_t o_hi) {
  if (act == Activation::none) return;
  for (int64_t t = t_lo; t < t_hi; ++t) {
    float* row = y + t * N;
    if (act == Activation::silu) {
      silu_in_place(row + o_lo, o_hi - o_lo);
    } else {
      for (int64_t o = o_lo; o < o_hi; ++o) row[o] = activate(act, row[o]);
    }
  }
}

// T == 1: groups of gemv_nv panels, parallel over groups. A GEMV is bound by streaming its weights
// (each used once), not by its flops: its cost counts 2 per weight byte, the time a core takes to
// bring a byte in from the last-level cache, so that matrices from ~500 KiB (ctx.min_parallel_work)
// split. The static split gives each thread the same panels every step: with two threads their
// halves of a small model's weights stay in each core's own L2.
template <class Args>
void gemv(const Args& a, Activation act, const CpuContext& ctx, const Kernels<Args>& ks) {
  const int64_t nv = ks.gemv_nv, groups = (a.NP + nv - 1) / nv;
  const double cost = 2.0 * static_cast<double>(nv * a.panel_bytes);
  parallel_for(groups, ctx, cost, [&](int64_t g) {
    const int64_t p0 = g * nv, count = std::min(nv, a.NP - p0);
    ks.gemv[count](a, Block{0, 1, p0, 0, a.K});
    activate_rows(act, a.y, a.N, 0, 1, p0 * P, std::min(a.N, (p0 + count) * P));
  });
}

// T > 1: tiles of 16·mr rows × gemm_nv panels, parallel over tiles. Inside a tile, K goes in
// blocks of kKBlock (a multiple of q8's 32-input blocks) so that the tile's rows of x and its
// panels stay in L2 while the strips of mr rows sweep them.
template <class Args>
void gemm(const Args& a, Activation act, const CpuContext& ctx, const Kernels<Args>& ks) {
  constexpr int64_t kKBlock = 256;
  static_assert(kKBlock % kQ8Block == 0);
  const int64_t mr = ks.mr, nv = ks.gemm_nv;
  const int64_t tb = 16 * mr, nt = (a.T + tb - 1) / tb, ng = (a.NP + nv - 1) / nv;
  parallel_for(nt * ng, ctx, 2.0 * static_cast<double>(tb * nv * P * a.K), [&](int64_t tile) {
    const int64_t t_lo = tile / ng * tb, t_hi = std::min(a.T, t_lo + tb);
    const int64_t p0 = tile % ng * nv, count = std::min(nv, a.NP - p0);
    for (int64_t k = 0, k_hi; k < a.K; k = k_hi) {
      k_hi = a.K - k < 2 * kKBlock ? a.K : k + kKBlock;  // the last block takes the short rest
      for (int64_t t = t_lo; t < t_hi; t += mr)
        ks.gemm[count](a, Block{t, static_cast<int>(std::min(mr, t_hi - t)), p0, k, k_hi});
    }
    activate_rows(act, a.y, a.N, t_lo, t_hi, p0 * P, std::min(a.N, (p0 + count) * P));
  });
}

// 2 ≤ T ≤ 8 (a batched decode step): every row in registers at once, so each weight is loaded
// once for all T rows (GEMM's strips of mr rows would stream W twice at T = 8 and compute
// padding rows), with no K blocking; parallel over groups of panels as the GEMV.
template <class Args>
void few_rows(const Args& a, Activation act, const CpuContext& ctx, const Kernels<Args>& ks) {
  const int T = static_cast<int>(a.T);
  const int64_t nv = ks.few_nv[T], groups = (a.NP + nv - 1) / nv;
  parallel_for(groups, ctx, 2.0 * static_cast<double>(nv * (a.panel_bytes + T * P * a.K)), [&](int64_t g) {
    const int64_t p0 = g * nv, count = std::min(nv, a.NP - p0);
    if (count == nv) ks.few[T](a, Block{0, T, p0, 0, a.K});
    else
      for (int64_t p = p0; p < p0 + count; ++p) ks.few1[T](a, Block{0, T, p, 0, a.K});
    activate_rows(act, a.y, a.N, 0, T, p0 * P, std::min(a.N, (p0 + count) * P));
  });
}

// Runs y = act(x·Wᵀ + b) with the instruction set's table: GEMV for one row, the few-rows
// kernels for up to 8, else GEMM.
template <class Args>
void run(const Args& a, Activation act, const CpuContext& ctx, const Kernels<Args>& ks) {
  if (a.T == 1) return gemv(a, act, ctx, ks);
  if (a.T <= 8 && ks.few[a.T]) return few_rows(a, act, ctx, ks);
  gemm(a, act, ctx, ks);
}

}  // namespace longvq::cpu::linear_driver
