// linear: y = act(x·Wᵀ + b), W stored [out, in].
//
// x and W both keep `in` contiguous, so every output is a dot product of two rows. A register-
// blocked microkernel computes MR rows of x against NR rows of W with MR·NR vector accumulators
// over the whole `in` axis (a masked load takes the tail), then reduces each accumulator's lanes
// in a fixed order. T == 1 (decode) is a GEMV: parallel over blocks of output rows. T > 1 is a
// GEMM over fixed 64-row tiles of x × (16·NR)-row tiles of W, parallel over tiles; a tile's x rows
// stay in L2 while W's micro-panels stream through L1. Edge tiles repeat the last valid row
// pointer instead of using a different kernel, so each output's arithmetic depends on neither
// the tiling nor the thread count. Paths: AVX-512, AVX2+FMA (intrinsics, chosen at run time) and a
// portable one that GCC vectorizes. W may be bf16 (WT = uint16_t): each weight is widened in
// registers right after its load (exact), so a bf16 W gives bit for bit the result of its f32
// widening, with half the bytes streamed.
#include <immintrin.h>

#include "kernels/cpu/cpu_common.h"

namespace longvq::cpu {
namespace {

template <class WT>
struct LinearArgs {
  const float* x;
  const WT* W;
  const float* b;
  float* y;
  int64_t T, K, N;
  Activation act;
};

// SiLU is left to the driver's vectorized epilogue (silu_rows); GELU (libm erf) stays scalar.
template <class WT>
inline void store(const LinearArgs<WT>& a, int64_t t, int64_t o, float acc) {
  if (a.b) acc += a.b[o];
  a.y[t * a.N + o] = a.act == Activation::silu ? acc : activate(a.act, acc);
}

// y[t, o_lo:o_hi] = φ(·) for rows t_lo..t_hi of a finished tile (still in cache).
template <class WT>
inline void silu_rows(const LinearArgs<WT>& a, int64_t t_lo, int64_t t_hi, int64_t o_lo, int64_t o_hi) {
  if (a.act != Activation::silu) return;
  for (int64_t t = t_lo; t < t_hi; ++t) silu_in_place(a.y + t * a.N + o_lo, o_hi - o_lo);
}

template <int MR, int NR, class WT>
inline void row_pointers(const LinearArgs<WT>& a, int64_t t0, int rows, int64_t o0, int cols, const float* (&xr)[MR],
                         const WT* (&wr)[NR]) {
  for (int r = 0; r < MR; ++r) xr[r] = a.x + (t0 + std::min(r, rows - 1)) * a.K;
  for (int c = 0; c < NR; ++c) wr[c] = a.W + (o0 + std::min(c, cols - 1)) * a.K;
}

// --- portable ---------------------------------------------------------------------------------
inline float widen(float w) { return w; }
inline float widen(uint16_t w) { return bf16_to_f32(w); }

template <int MR, int NR, class WT>
void kernel_generic(const LinearArgs<WT>& a, int64_t t0, int rows, int64_t o0, int cols) {
  const float* xr[MR];
  const WT* wr[NR];
  row_pointers<MR, NR>(a, t0, rows, o0, cols, xr, wr);
  const int64_t K = a.K;
  float acc[MR][NR][8] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c)
        for (int l = 0; l < 8; ++l) acc[r][c][l] += xr[r][k + l] * widen(wr[c][k + l]);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const float* v = acc[r][c];
      float s = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      for (int64_t kk = k; kk < K; ++kk) s += xr[r][kk] * widen(wr[c][kk]);
      store(a, t0 + r, o0 + c, s);
    }
}

// --- AVX2 + FMA -----------------------------------------------------------------------------
__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// 8 weights as f32; the masked form loads the first n < 8 and zeroes the rest.
__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
__attribute__((target("avx2,fma"))) inline __m256 load8_first(const float* p, __m256i mask, int64_t) {
  return _mm256_maskload_ps(p, mask);
}
__attribute__((target("avx2,fma"))) inline __m256 load8_first(const uint16_t* p, __m256i, int64_t n) {
  uint16_t tail[8] = {};  // AVX2 has no 16-bit masked load
  for (int64_t i = 0; i < n; ++i) tail[i] = p[i];
  return load8(tail);
}

template <int MR, int NR, class WT>
__attribute__((target("avx2,fma"))) void kernel_avx2(const LinearArgs<WT>& a, int64_t t0, int rows, int64_t o0,
                                                      int cols) {
  const float* xr[MR];
  const WT* wr[NR];
  row_pointers<MR, NR>(a, t0, rows, o0, cols, xr, wr);
  const int64_t K = a.K;
  __m256 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = load8(wr[c] + k);
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_loadu_ps(xr[r] + k);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (k < K) {
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(K - k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = load8_first(wr[c] + k, mask, K - k);
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_maskload_ps(xr[r] + k, mask);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) store(a, t0 + r, o0 + c, hsum256(acc[r][c]));
}

// --- AVX-512 ----------------------------------------------------------------------------------
// (Through memory: GCC 12's 512→256-bit cast and extract intrinsics warn -Wmaybe-uninitialized.)
__attribute__((target("avx512f,avx2,fma"))) inline float hsum512(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  return hsum256(_mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8)));
}

#define LONGVQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
LONGVQ_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
// (maskz forms with a full mask: the plain ones read _mm512_undefined, which GCC 12 warns about.)
LONGVQ_AVX512 inline __m512 widen16(__m256i bf16) {
  const __mmask16 all = 0xFFFF;
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, bf16), 16));
}
LONGVQ_AVX512 inline __m512 load16(const uint16_t* p) {
  return widen16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
LONGVQ_AVX512 inline __m512 load16_first(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
LONGVQ_AVX512 inline __m512 load16_first(const uint16_t* p, __mmask16 mask) {
  return widen16(_mm256_maskz_loadu_epi16(mask, p));
}

template <int MR, int NR, class WT>
LONGVQ_AVX512 void kernel_avx512(const LinearArgs<WT>& a, int64_t t0, int rows, int64_t o0, int cols) {
  const float* xr[MR];
  const WT* wr[NR];
  row_pointers<MR, NR>(a, t0, rows, o0, cols, xr, wr);
  const int64_t K = a.K;
  __m512 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = load16(wr[c] + k);
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_loadu_ps(xr[r] + k);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1u);
    __m512 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = load16_first(wr[c] + k, mask);
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, xr[r] + k);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) store(a, t0 + r, o0 + c, hsum512(acc[r][c]));
}

#undef LONGVQ_AVX512

// --- drivers --------------------------------------------------------------------------------
template <class WT>
using Kernel = void (*)(const LinearArgs<WT>&, int64_t, int, int64_t, int);

// T == 1: output rows in blocks of 8·NR, parallel over blocks. A GEMV is bound by streaming its
// weights (each used once), not by its flops: its cost counts 2 per weight byte, the time a
// core takes to bring a byte in from the last-level cache, so that a 128 × 256 f32 matrix
// (128 KiB) already splits. The static split gives each thread the same rows every step: with two
// threads their halves of a small model's weights stay in each core's own L2.
template <int NR, class WT>
void gemv(const LinearArgs<WT>& a, const CpuContext& ctx, Kernel<WT> kernel) {
  const int64_t block = 8 * NR;
  const int64_t blocks = (a.N + block - 1) / block;
  const double cost = 2.0 * sizeof(WT) * static_cast<double>(block * a.K);
  parallel_for(blocks, ctx.threads, cost, [&](int64_t ib) {
    const int64_t o_end = std::min(a.N, (ib + 1) * block);
    for (int64_t o = ib * block; o < o_end; o += NR)
      kernel(a, 0, 1, o, static_cast<int>(std::min<int64_t>(NR, o_end - o)));
    silu_rows(a, 0, 1, ib * block, o_end);
  });
}

// T > 1: 64 rows of x × 16·NR rows of W per tile, parallel over tiles.
template <int MR, int NR, class WT>
void gemm(const LinearArgs<WT>& a, const CpuContext& ctx, Kernel<WT> kernel) {
  const int64_t tb = 64 / MR * MR, ob = 16 * NR;
  const int64_t nt = (a.T + tb - 1) / tb, no = (a.N + ob - 1) / ob;
  parallel_for(nt * no, ctx.threads, 2.0 * static_cast<double>(tb * ob * a.K), [&](int64_t tile) {
    const int64_t t_lo = tile / no * tb, o_lo = tile % no * ob;
    const int64_t t_hi = std::min(a.T, t_lo + tb), o_hi = std::min(a.N, o_lo + ob);
    for (int64_t o = o_lo; o < o_hi; o += NR)
      for (int64_t t = t_lo; t < t_hi; t += MR)
        kernel(a, t, static_cast<int>(std::min<int64_t>(MR, t_hi - t)), o,
               static_cast<int>(std::min<int64_t>(NR, o_hi - o)));
    silu_rows(a, t_lo, t_hi, o_lo, o_hi);
  });
}

template <class WT>
void linear_as(const OpCall& c, const CpuContext& ctx) {
  const TensorRef& xt = c.inputs[0];
  LinearArgs<WT> a{xt.as<const float>(), c.inputs[1].as<const WT>(), in_f32(c, 2),          c.outputs[0].as<float>(),
                   xt.rows(),            xt.cols(),                  c.inputs[1].shape[0], c.params.activation};
  if (a.T == 0 || a.N == 0) return;
  switch (cpu_isa()) {
    case CpuIsa::avx512:
      if (a.T == 1) return gemv<8>(a, ctx, kernel_avx512<1, 8, WT>);
      return gemm<4, 6>(a, ctx, kernel_avx512<4, 6, WT>);
    case CpuIsa::avx2:
      if (a.T == 1) return gemv<8>(a, ctx, kernel_avx2<1, 8, WT>);
      return gemm<4, 3>(a, ctx, kernel_avx2<4, 3, WT>);
    case CpuIsa::generic:
      if (a.T == 1) return gemv<4>(a, ctx, kernel_generic<1, 4, WT>);
      return gemm<2, 2>(a, ctx, kernel_generic<2, 2, WT>);
  }
}

}  // namespace

void linear(const OpCall& c, const CpuContext& ctx) {
  if (c.inputs[1].dtype == DType::bf16) return linear_as<uint16_t>(c, ctx);
  linear_as<float>(c, ctx);
}

}  // namespace longvq::cpu
