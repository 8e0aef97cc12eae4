// vq_codes and vq_attention (longvq-model.md §3, §4).
//
// vq_attention is an O(n·(W + S)·(e + h)) sweep, never O(n²):
//  * causal (stateful or not): queries in position order; before query P every key that left
//    its window (position < P − W) is added to a running per-code memory (U, N), in position
//    order; the window keys are scored one by one. The memory starts as the state's cache.
//  * bidirectional: a forward sweep with the prefix memory (keys j < i − W) and the window,
//    then a backward sweep with the suffix memory (keys j > i + W) built from the end; the two
//    partial softmaxes (max, num, den) are merged. Nothing is ever subtracted.
// Work items are (batch row, block of queries); an item rebuilds its starting memory from the
// first key (or the last, backward) in the same order the whole sweep would, so the result does
// not depend on how the queries are split, i.e. on the thread count, nor on how a stateful
// chunk is split into calls. A stateful call then updates the state exactly as n decode steps
// (push_key): ring slot = position mod W; the key leaving the ring joins cache_u / cache_n.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_isa.h"

namespace longvq::cpu {
namespace {

struct CodesArgs {
  const float* k;
  const double* ct;     // codebook transposed [e][S], in double
  const double* norm2;  // ||C_s||², double, summed over i ascending
  int32_t* codes;
  int64_t S, e;
};

struct AttnArgs {
  const float* Q;
  const float* K;
  const float* V;
  const int32_t* codes;
  const float* C;   // codebook [S, e]
  const float* Ct;  // the same transposed, [e, S] (code_scores broadcasts Q[i] against a row), or null
  const float* T;  // rel_bias
  const int32_t* lengths;
  const int32_t* ring_codes;
  const float* ring_values;
  const float* ring_keys;
  const float* cache_u;
  const int32_t* cache_n;
  const int64_t* pos;
  const int32_t* rows;  // the state row of batch row b (null: row b)
  float* O;
  int64_t B, n, e, h, S, W;
  bool qwk;
  float scale;
};

// What each copy of the body computes with (see the top of cpu_vq_body.inc): one vector register
// of floats / doubles and the multiply-add on them, fused (one rounding) where the target has
// FMA. Intrinsics rather than lane loops of __builtin_fmaf, which GCC vectorizes only sometimes.

#if defined(__x86_64__) || defined(__i386__)
// The last two halvings of fold_row (lane l += lane l + w for w = lanes/2 .. 1), on 4 lanes.
inline float fold4(__m128 x) {
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));                           // l + (l + 2)
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));   // l + (l + 1)
}
#endif

// The portable copy (x86-64 baseline: SSE2; aarch64: NEON): mul + add, never fused, so that it
// computes the same on every machine (on x86 without FMA, __builtin_fmaf would call libm).
namespace v_generic {
constexpr int kFloatLanes = 4;
typedef float vf __attribute__((vector_size(16)));
typedef double vd __attribute__((vector_size(16)));
inline float fmadd(float a, float b, float c) { return a * b + c; }
inline double fmadd(double a, double b, double c) { return a * b + c; }
inline void vfma(vf& acc, const vf& w, const vf& x) { acc = w * x + acc; }
inline void vfma(vd& acc, const vd& w, const vd& x) { acc = w * x + acc; }
typedef vf vr;
constexpr int kRowLanes = 4, kScoreBlocks = 2;
#if defined(__x86_64__) || defined(__i386__)
inline void vbroadcast(vf& v, float x) { v = _mm_set1_ps(x); }
inline void vbroadcast(vd& v, double x) { v = _mm_set1_pd(x); }
inline float fold_row(const vr& v) { return fold4(v); }
#else
inline void vbroadcast(vf& v, float x) { v = vf{x, x, x, x}; }
inline void vbroadcast(vd& v, double x) { v = vd{x, x}; }
inline float fold_row(const vr& v) { return (v[0] + v[2]) + (v[1] + v[3]); }  // as fold4
#endif
#include "kernels/cpu/cpu_vq_body.inc"
}
#if defined(__x86_64__) || defined(__i386__)
LONGVQ_ISA_BEGIN_AVX2
namespace v_avx2 {
constexpr int kFloatLanes = 8;
typedef float vf __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(32)));
inline float fmadd(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline double fmadd(double a, double b, double c) { return __builtin_fma(a, b, c); }
inline void vfma(vf& acc, const vf& w, const vf& x) { acc = _mm256_fmadd_ps(w, x, acc); }
inline void vfma(vd& acc, const vd& w, const vd& x) { acc = _mm256_fmadd_pd(w, x, acc); }
inline void vbroadcast(vf& v, float x) { v = _mm256_set1_ps(x); }
inline void vbroadcast(vd& v, double x) { v = _mm256_set1_pd(x); }
typedef vf vr;
constexpr int kRowLanes = 8, kScoreBlocks = 1;
inline float fold_row(const vr& v) { return fold4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }
#include "kernels/cpu/cpu_vq_body.inc"
}
LONGVQ_ISA_END
LONGVQ_ISA_BEGIN_AVX512
namespace v_avx512 {
constexpr int kFloatLanes = 16;
typedef float vf __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(64)));
inline float fmadd(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline double fmadd(double a, double b, double c) { return __builtin_fma(a, b, c); }
inline void vfma(vf& acc, const vf& w, const vf& x) { acc = _mm512_fmadd_ps(w, x, acc); }
inline void vfma(vd& acc, const vd& w, const vd& x) { acc = _mm512_fmadd_pd(w, x, acc); }
inline void vbroadcast(vf& v, float x) { v = _mm512_set1_ps(x); }
inline void vbroadcast(vd& v, double x) { v = _mm512_set1_pd(x); }
// Rows in 8 lanes (not 16): 8 residue vectors × 2 blocks of codes fill 16 registers, and a row
// of e = 32 is 4 full vectors.
typedef float vr __attribute__((vector_size(32)));
constexpr int kRowLanes = 8, kScoreBlocks = 2;
inline float fold_row(const vr& v) { return fold4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }
inline void vfma(vr& acc, const vr& w, const vr& x) { acc = _mm256_fmadd_ps(w, x, acc); }
#include "kernels/cpu/cpu_vq_body.inc"
}
LONGVQ_ISA_END
#else  // no AVX copies: the names pick() takes are the generic one (cpu_isa.h)
namespace v_avx2 = v_generic;
namespace v_avx512 = v_generic;
#endif

template <class F>
F pick(F generic, F avx2, F avx512) {
  switch (cpu_isa()) {
    case CpuIsa::avx512: return avx512;
    case CpuIsa::avx2: return avx2;
    case CpuIsa::generic: break;
  }
  return generic;
}

[[noreturn]] void bad_value(const std::string& what) { throw std::out_of_range("vq_attention: " + what); }

}  // namespace

void vq_codes(const OpCall& c, const CpuContext& ctx) {
  const TensorRef& kt = c.in(VqCodesIn::k);
  const int64_t T = kt.rows(), e = kt.cols(), S = c.in(VqCodesIn::codebook).shape[0];
  const float* C = c.in_as<const float>(VqCodesIn::codebook);
  const float* K = kt.as<const float>();
  int32_t* codes = c.out_as<int32_t>(VqCodesOut::codes);
  if (T <= 4) {  // decode: the sums straight off the codebook rows beat transposing it
    auto code_of = pick(v_generic::code_of_rows, v_avx2::code_of_rows, v_avx512::code_of_rows);
    for (int64_t t = 0; t < T; ++t) codes[t] = code_of(K + t * e, C, S, e);
    return;
  }
  std::vector<double> ct(static_cast<size_t>(e * S)), norm2(static_cast<size_t>(S), 0.0);
  for (int64_t i = 0; i < e; ++i)
    for (int64_t s = 0; s < S; ++s) {
      const double v = C[s * e + i];
      ct[i * S + s] = v;
      norm2[s] += v * v;  // i ascending, as ref_vq_code
    }
  CodesArgs a{K, ct.data(), norm2.data(), codes, S, e};
  auto item = pick(v_generic::codes_item, v_avx2::codes_item, v_avx512::codes_item);
  constexpr int64_t kKeys = 16;
  parallel_for((T + kKeys - 1) / kKeys, ctx, 2.0 * static_cast<double>(kKeys * S * e),
               [&](int64_t blk) { item(a, blk * kKeys, std::min(T, (blk + 1) * kKeys)); });
}

void vq_attention(const OpCall& c, const CpuContext& ctx) {
  using I = VqAttentionIn;
  const OpParams& p = c.params;
  const TensorRef& qt = c.in(I::q);
  const int64_t B = qt.shape[0], n = qt.shape[1], e = qt.shape[2];
  const int64_t h = c.in(I::v).shape[2], S = c.in(I::codebook).shape[0], W = p.window;
  const bool ring = p.stateful && W > 0;
  const float* C = c.in_as<const float>(I::codebook);
  // The transposed codebook costs about one query's scores: worth it from a few queries on.
  std::vector<float> ct;
  if (B * n >= 4) {
    ct.resize(static_cast<size_t>(S * e));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t i = 0; i < e; ++i) ct[i * S + s] = C[s * e + i];
  }
  // The state, [R, ...]: batch row b continues state row rows[b] (b without state_rows).
  int32_t* ring_codes = ring ? c.in_as<int32_t>(I::ring_codes) : nullptr;
  float* ring_values = ring ? c.in_as<float>(I::ring_values) : nullptr;
  float* ring_keys = ring && !p.quantize_window_keys ? c.in_as<float>(I::ring_keys) : nullptr;
  float* cache_u = p.stateful ? c.in_as<float>(I::cache_u) : nullptr;
  int32_t* cache_n = p.stateful ? c.in_as<int32_t>(I::cache_n) : nullptr;
  const int32_t* rows = c.in_as<const int32_t>(I::state_rows);
  auto row_of = [rows](int64_t b) { return rows ? static_cast<int64_t>(rows[b]) : b; };
  AttnArgs a{c.in_as<const float>(I::q),
             c.in_as<const float>(I::k),
             c.in_as<const float>(I::v),
             c.in_as<const int32_t>(I::codes),
             C,
             ct.empty() ? nullptr : ct.data(),
             c.in_as<const float>(I::rel_bias),
             p.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr,
             ring_codes,
             ring_values,
             ring_keys,
             cache_u,
             cache_n,
             p.stateful ? c.in_as<const int64_t>(I::pos) : nullptr,
             rows,
             c.out_as<float>(VqAttentionOut::o),
             B, n, e, h, S, W,
             p.quantize_window_keys,
             1.0f / std::sqrt(static_cast<float>(e))};
  if (B == 0 || n == 0) return;

  // Values the kernels index with: refuse them before touching memory.
  for (int64_t i = 0; i < B * n; ++i)
    if (a.codes[i] < 0 || a.codes[i] >= S)
      bad_value("code " + std::to_string(a.codes[i]) + " at " + std::to_string(i) + " outside [0, " + std::to_string(S) + ")");
  for (int64_t b = 0; b < B && a.pos; ++b) {  // the rows that step only: idle rows cost nothing
    const int64_t sb = row_of(b);
    if (a.pos[sb] < 0) bad_value("pos[" + std::to_string(sb) + "] = " + std::to_string(a.pos[sb]) + " < 0");
    for (int64_t i = 0; i < W && a.ring_codes; ++i)
      if (a.ring_codes[sb * W + i] < -1 || a.ring_codes[sb * W + i] >= S)
        bad_value("ring code " + std::to_string(a.ring_codes[sb * W + i]) + " outside [-1, " + std::to_string(S) + ")");
  }

  // Split each row's queries into pieces: one per row with a single thread, else enough pieces
  // to keep the threads busy (the result is the same for any split).
  int64_t pieces = 1;
  if (ctx.threads > 1) pieces = std::clamp<int64_t>((2 * ctx.threads + B - 1) / B, 1, (n + 15) / 16);
  const int64_t chunk = (n + pieces - 1) / pieces;
  pieces = (n + chunk - 1) / chunk;
  const double cost = static_cast<double>(chunk) * static_cast<double>((2 * W + 1 + S) * (e + h));
  auto item = p.bidirectional ? pick(v_generic::bidir_item, v_avx2::bidir_item, v_avx512::bidir_item)
                              : pick(v_generic::causal_item, v_avx2::causal_item, v_avx512::causal_item);
  parallel_for(B * pieces, ctx, cost, [&](int64_t it) {
    const int64_t b = it / pieces, t0 = it % pieces * chunk;
    item(a, b, t0, std::min(n, t0 + chunk));
  });
  if (!p.stateful) return;

  // The state after the chunk: push_key for each token, in order.
  parallel_for(B, ctx, static_cast<double>(n * h), [&](int64_t b) {
    const int64_t sb = row_of(b);
    const int64_t p0 = a.pos[sb];
    auto add = [&](int32_t code, const float* v) {
      float* u = cache_u + (sb * S + code) * h;
      for (int64_t j = 0; j < h; ++j) u[j] += v[j];
      cache_n[sb * S + code] += 1;
    };
    for (int64_t i = 0; i < n; ++i) {
      const int64_t P = p0 + i;
      const int32_t code = a.codes[b * n + i];
      const float* v = a.V + (b * n + i) * h;
      if (W == 0) {
        add(code, v);
        continue;
      }
      const int64_t slot = P % W;
      const int32_t old = ring_codes[sb * W + slot];
      if (P >= W && old >= 0) add(old, ring_values + (sb * W + slot) * h);  // position P − W leaves
      ring_codes[sb * W + slot] = code;
      std::copy(v, v + h, ring_values + (sb * W + slot) * h);
      if (ring_keys) std::copy(a.K + (b * n + i) * e, a.K + (b * n + i + 1) * e, ring_keys + (sb * W + slot) * e);
    }
  });
}

}  // namespace longvq::cpu
