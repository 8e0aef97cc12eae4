// linear: y = act(x·Wᵀ + b), W stored [out, in].
//
// The kernels read W as panels (cpu_pack_linear_panels): 16 outputs side by side for each
// input k, so one vector load brings W[o..o+15][k] and every output is a single chain
//     acc = 0;  for k = 0, 1, …, K−1:  acc = fma(x[k], W[o][k], acc);   y = act(acc + b[o])
// vectorized across outputs, with no horizontal sums. That chain is the whole definition of an
// output's arithmetic: the microkernels differ only in how many rows of x (MR) and panels (NV)
// they keep in registers, and long K is cut into blocks whose partial sums go through y and come
// back unchanged (a float store and load are exact). So GEMV (decode, T = 1) and GEMM (prefill,
// classification) give bit-identical outputs, whatever the tiling or the thread count.
// Paths: AVX-512, AVX2+FMA (intrinsics, chosen at run time) and a portable one that GCC
// vectorizes (multiply then add: without FMA hardware a fused step would be a libm call). W may
// be bf16 (WT = uint16_t): each weight is widened in registers right after its load (exact), so a
// bf16 W gives bit for bit the result of its f32 widening, with half the bytes streamed. The CPU
// device packs every model matrix once at load (Device::prepare_weight, TensorRef::layout =
// kCpuLinearPanels); a dense W (op tests, other callers) is packed into scratch first.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "kernels/cpu/cpu_common.h"

namespace longvq::cpu {
namespace {

constexpr int64_t P = kCpuLinearPanel;  // outputs per panel

template <class WT>
struct LinearArgs {
  const float* x;  // [T, K]
  const WT* W;     // panels [NP, K, 16]
  const float* b;  // [N] or null
  float* y;        // [T, N]
  int64_t T, K, N, NP;
};

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

template <int MR, class WT>
inline void row_pointers(const LinearArgs<WT>& a, const Block& blk, const float* (&xr)[MR]) {
  for (int r = 0; r < MR; ++r) xr[r] = a.x + (blk.t0 + std::min(r, blk.rows - 1)) * a.K;
}

// --- portable ---------------------------------------------------------------------------------
inline float widen(float w) { return w; }
inline float widen(uint16_t w) { return bf16_to_f32(w); }

template <int MR, int NV, class WT>
void kernel_generic(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  float acc[MR][NV][P] = {};
  if (blk.k_lo > 0)
    for (int r = 0; r < blk.rows; ++r)
      for (int v = 0; v < NV; ++v) {
        const int64_t p = blk.p0 + v;
        std::copy_n(a.y + (blk.t0 + r) * a.N + p * P, valid_lanes(a.N, p), acc[r][v]);
      }
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k)
    for (int r = 0; r < MR; ++r) {
      const float xk = xr[r][k];
      for (int v = 0; v < NV; ++v) {
        const WT* w = a.W + ((blk.p0 + v) * a.K + k) * P;
        for (int j = 0; j < P; ++j) acc[r][v][j] = acc[r][v][j] + xk * widen(w[j]);
      }
    }
  const bool last = blk.k_hi == a.K;
  for (int r = 0; r < blk.rows; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t p = blk.p0 + v;
      float* y = a.y + (blk.t0 + r) * a.N + p * P;
      for (int j = 0; j < valid_lanes(a.N, p); ++j) y[j] = last && a.b ? acc[r][v][j] + a.b[p * P + j] : acc[r][v][j];
    }
}

#if defined(__x86_64__) || defined(__i386__)
// --- AVX2 + FMA: a panel is two 8-lane halves ---------------------------------------------------
#define LONGVQ_AVX2 __attribute__((target("avx2,fma")))
LONGVQ_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
LONGVQ_AVX2 inline __m256 load8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
// Lane mask of the first n (≤ 8, may be ≤ 0) lanes.
LONGVQ_AVX2 inline __m256i first_lanes8(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR, int NV, class WT>
LONGVQ_AVX2 void kernel_avx2(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __m256i mask[NV][2];
  for (int v = 0; v < NV; ++v) {
    const int n = valid_lanes(a.N, blk.p0 + v);
    mask[v][0] = first_lanes8(n);
    mask[v][1] = first_lanes8(n - 8);
  }
  __m256 acc[MR][NV][2];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h)
        acc[r][v][h] = blk.k_lo > 0 && r < blk.rows
                           ? _mm256_maskload_ps(a.y + (blk.t0 + r) * a.N + (blk.p0 + v) * P + 8 * h, mask[v][h])
                           : _mm256_setzero_ps();
  const WT* w0 = a.W + blk.p0 * a.K * P;
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k) {
    __m256 w[NV][2];
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h) w[v][h] = load8(w0 + (v * a.K + k) * P + 8 * h);
    for (int r = 0; r < MR; ++r) {
      const __m256 xb = _mm256_broadcast_ss(xr[r] + k);
      for (int v = 0; v < NV; ++v)
        for (int h = 0; h < 2; ++h) acc[r][v][h] = _mm256_fmadd_ps(xb, w[v][h], acc[r][v][h]);
    }
  }
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

// --- AVX-512: a panel is one vector -------------------------------------------------------------
#define LONGVQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
LONGVQ_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
// (maskz forms with a full mask: the plain ones read _mm512_undefined, which GCC 12 warns about.)
LONGVQ_AVX512 inline __m512 load16(const uint16_t* p) {
  const __mmask16 all = 0xFFFF;
  const __m256i bf16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, bf16), 16));
}

template <int MR, int NV, class WT>
LONGVQ_AVX512 void kernel_avx512(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = static_cast<__mmask16>((1u << valid_lanes(a.N, blk.p0 + v)) - 1u);
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = blk.k_lo > 0 && r < blk.rows
                      ? _mm512_maskz_loadu_ps(mask[v], a.y + (blk.t0 + r) * a.N + (blk.p0 + v) * P)
                      : _mm512_setzero_ps();
  const WT* w0 = a.W + blk.p0 * a.K * P;
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k) {
    __m512 w[NV];
    for (int v = 0; v < NV; ++v) w[v] = load16(w0 + (v * a.K + k) * P);
    for (int r = 0; r < MR; ++r) {
      const __m512 xb = _mm512_set1_ps(xr[r][k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(xb, w[v], acc[r][v]);
    }
  }
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
template <class WT>
using Kernel = void (*)(const LinearArgs<WT>&, const Block&);

// Per instruction set: GEMV kernels by panel count (1..gemv_nv, one row) and GEMM kernels by panel
// count (1..gemm_nv, mr rows): as many accumulators as the registers hold.
template <class WT>
struct Kernels {
  Kernel<WT> gemv[9];
  int gemv_nv;
  Kernel<WT> gemm[5];
  int gemm_nv, mr;
};

template <class WT>
const Kernels<WT>& kernels() {
#if defined(__x86_64__) || defined(__i386__)
  static const Kernels<WT> avx512{{nullptr, kernel_avx512<1, 1, WT>, kernel_avx512<1, 2, WT>, kernel_avx512<1, 3, WT>,
                                   kernel_avx512<1, 4, WT>, kernel_avx512<1, 5, WT>, kernel_avx512<1, 6, WT>,
                                   kernel_avx512<1, 7, WT>, kernel_avx512<1, 8, WT>},
                                  8,
                                  {nullptr, kernel_avx512<6, 1, WT>, kernel_avx512<6, 2, WT>, kernel_avx512<6, 3, WT>,
                                   kernel_avx512<6, 4, WT>},
                                  4,
                                  6};
  static const Kernels<WT> avx2{{nullptr, kernel_avx2<1, 1, WT>, kernel_avx2<1, 2, WT>, kernel_avx2<1, 3, WT>,
                                 kernel_avx2<1, 4, WT>},
                                4,
                                {nullptr, kernel_avx2<6, 1, WT>},
                                1,
                                6};
#endif
  static const Kernels<WT> generic{{nullptr, kernel_generic<1, 1, WT>, kernel_generic<1, 2, WT>},
                                   2,
                                   {nullptr, kernel_generic<4, 1, WT>},
                                   1,
                                   4};
#if defined(__x86_64__) || defined(__i386__)
  switch (cpu_isa()) {
    case CpuIsa::avx512: return avx512;
    case CpuIsa::avx2: return avx2;
    case CpuIsa::generic: break;
  }
#endif
  return generic;
}

// y[t, o_lo:o_hi] = act(y) for rows t_lo..t_hi−1 of a finished tile (still in cache).
void activate_rows(Activation act, float* y, int64_t N, int64_t t_lo, int64_t t_hi, int64_t o_lo, int64_t o_hi) {
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
template <class WT>
void gemv(const LinearArgs<WT>& a, Activation act, const CpuContext& ctx, const Kernels<WT>& ks) {
  const int64_t nv = ks.gemv_nv, groups = (a.NP + nv - 1) / nv;
  const double cost = 2.0 * sizeof(WT) * static_cast<double>(nv * P * a.K);
  parallel_for(groups, ctx, cost, [&](int64_t g) {
    const int64_t p0 = g * nv, count = std::min(nv, a.NP - p0);
    ks.gemv[count](a, Block{0, 1, p0, 0, a.K});
    activate_rows(act, a.y, a.N, 0, 1, p0 * P, std::min(a.N, (p0 + count) * P));
  });
}

// T > 1: tiles of 16·mr rows × gemm_nv panels, parallel over tiles. Inside a tile, K goes in
// blocks of kKBlock so that the tile's rows of x and its panels stay in L2 while the strips of mr
// rows sweep them.
template <class WT>
void gemm(const LinearArgs<WT>& a, Activation act, const CpuContext& ctx, const Kernels<WT>& ks) {
  constexpr int64_t kKBlock = 256;
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

template <class WT>
void linear_as(const OpCall& c, const CpuContext& ctx) {
  const TensorRef &xt = c.in(LinearIn::x), &wt = c.in(LinearIn::W);
  const int64_t T = xt.rows(), K = xt.cols(), N = wt.shape[0];
  if (T == 0 || N == 0) return;
  const WT* panels = wt.as<const WT>();
  if (wt.layout != kCpuLinearPanels) {  // a dense W (op tests, unprepared weights): pack into scratch
    WT* own = scratch<WT>(0, cpu_linear_panel_bytes(N, K, wt.dtype) / sizeof(WT));
    cpu_pack_linear_panels(wt, own);
    panels = own;
  }
  const LinearArgs<WT> a{xt.as<const float>(), panels, c.in_as<const float>(LinearIn::b), c.out_as<float>(OutY::y),
                         T, K, N, (N + P - 1) / P};
  const Kernels<WT>& ks = kernels<WT>();
  if (T == 1) return gemv(a, c.params.activation, ctx, ks);
  gemm(a, c.params.activation, ctx, ks);
}

}  // namespace

void linear_q8(const OpCall& c, const CpuContext& ctx);  // cpu_linear_q8.cpp

void linear(const OpCall& c, const CpuContext& ctx) {
  if (c.in(LinearIn::W).dtype == DType::q8) return linear_q8(c, ctx);
  if (c.in(LinearIn::W).dtype == DType::bf16) return linear_as<uint16_t>(c, ctx);
  linear_as<float>(c, ctx);
}

}  // namespace longvq::cpu

namespace longvq {
constexpr int64_t P = kCpuLinearPanel;

size_t cpu_linear_panel_bytes(int64_t out, int64_t in, DType dtype) {
  if (dtype == DType::q8) return cpu_linear_q8_panel_bytes(out, in);
  return static_cast<size_t>((out + P - 1) / P * in * P) * dtype_size(dtype);
}

namespace {

// Element by element as T (a fixed-size memcpy is one move, and W may be unaligned in an mmap).
template <class T>
void pack_panels_as(const unsigned char* src, T* panels, int64_t out, int64_t in) {
  const int64_t count = (out + P - 1) / P;
  for (int64_t p = 0; p < count; ++p)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j < P; ++j) {
        const int64_t o = p * P + j;
        T v{};
        if (o < out) std::memcpy(&v, src + (o * in + k) * sizeof(T), sizeof(T));
        panels[(p * in + k) * P + j] = v;
      }
}

}  // namespace

void cpu_pack_linear_panels(const TensorRef& W, void* dst) {
  const int64_t out = W.shape.at(0), in = W.shape.at(1);
  if (W.dtype == DType::q8) return cpu_pack_linear_q8_panels(W, dst);
  const auto* src = static_cast<const unsigned char*>(W.data);
  if (dtype_size(W.dtype) == 2) return pack_panels_as(src, static_cast<uint16_t*>(dst), out, in);
  pack_panels_as(src, static_cast<uint32_t*>(dst), out, in);
}

}  // namespace longvq
