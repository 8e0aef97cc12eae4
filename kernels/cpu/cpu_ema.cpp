// ema: X' = φ(EMA(x) + ω·x), causal or bidirectional, optionally continued from a state, as the
// recurrence H ← q⊙H + pb·x̃, y = Σ_n g·H (longvq-model.md §2.2). Parallel over (batch row,
// block of kLanes channels); each item scans its channels through time. The bidirectional form
// adds a backward scan with rows d..2d−1 (lag 0 counted twice, as MEGA).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_isa.h"

namespace longvq::cpu {
namespace {

constexpr int kLanes = 16;

struct EmaArgs {
  const float* x;
  const float* coef;  // packed q, pb, g: [direction][block][3][N][kLanes], zero-padded lanes
  const float* omega;
  const int32_t* lengths;
  float* state;         // [R, d, N] or null
  const int32_t* rows;  // state row of batch row b, or null (row b)
  float* y;
  int64_t B, n, d, N;
  bool bidir;
};

// A causal, stateful call of one step (decode): coefficients as they come, [D', N].
struct EmaStepArgs {
  const float* x;  // [B, 1, d]
  const float *q, *pb, *g, *omega;
  const int32_t* lengths;
  float* state;         // [R, d, N]
  const int32_t* rows;  // state row of batch row b, or null (row b)
  float* y;
  int64_t d, N;
};

// Per body: kFma, whether madd fuses a·b + c (both AVX targets have FMA, the generic one not);
// kSteps, time steps per pass of the scan. The generic (SSE2) body stays at 1: GCC does not
// vectorize the multi-step pass for it, and 16 lanes are already 4 of its 16 registers.
namespace v_generic {
constexpr bool kFma = false;
constexpr int kSteps = 1;
#include "kernels/cpu/cpu_ema_body.inc"
}
#if defined(__x86_64__) || defined(__i386__)
LONGVQ_ISA_BEGIN_AVX2
namespace v_avx2 {
constexpr bool kFma = true;
constexpr int kSteps = 8;
#include "kernels/cpu/cpu_ema_body.inc"
}
LONGVQ_ISA_END
LONGVQ_ISA_BEGIN_AVX512
namespace v_avx512 {
constexpr bool kFma = true;
constexpr int kSteps = 8;
#include "kernels/cpu/cpu_ema_body.inc"

// In-register transpose of a 16 × 16 block: r[i][j] → r[j][i].
inline void transpose16(__m512 (&r)[16]) {
  const __mmask16 all = 0xFFFF;  // maskz forms: the plain ones read _mm512_undefined (GCC 12 warns)
  const __mmask8 all8 = 0xFF;
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_maskz_unpacklo_ps(all, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(all, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i + j], lane k: element 4k + j of rows 4i..4i+3
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), e = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all8, a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all8, a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all8, b, e));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all8, b, e));
  }
  __m512 o[16];
  for (int j = 0; j < 4; ++j) {  // gather lane k of the four groups: element j + 4k of all 16 rows
    const __m512 u0 = _mm512_maskz_shuffle_f32x4(all, r[j], r[4 + j], 0x88);  // lanes 0, 2 of both
    const __m512 u1 = _mm512_maskz_shuffle_f32x4(all, r[j], r[4 + j], 0xdd);  // lanes 1, 3
    const __m512 u2 = _mm512_maskz_shuffle_f32x4(all, r[8 + j], r[12 + j], 0x88);
    const __m512 u3 = _mm512_maskz_shuffle_f32x4(all, r[8 + j], r[12 + j], 0xdd);
    o[j] = _mm512_maskz_shuffle_f32x4(all, u0, u2, 0x88);
    o[j + 8] = _mm512_maskz_shuffle_f32x4(all, u0, u2, 0xdd);
    o[j + 4] = _mm512_maskz_shuffle_f32x4(all, u1, u3, 0x88);
    o[j + 12] = _mm512_maskz_shuffle_f32x4(all, u1, u3, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = o[i];
}

// ema_step_item for N = 16 (every shipped model): a channel's 16 state values are one vector, so
// its update is one fma; the sum over m, a chain per channel, runs for 16 channels side by side
// after transposing H and g in registers. Per channel exactly ema_step_item's operations (and
// the scan's): h_m = fma(q_m, h_m, pb_m·x̃), acc = fma(g_m, h_m, acc) from acc = 0, m ascending,
// y = φ(acc + ω·x).
void ema_step_item_n16(const EmaStepArgs& a, int64_t b) {
  constexpr int64_t N = 16;
  const int64_t d = a.d;
  const bool valid = !a.lengths || a.lengths[b] > 0;
  const float* xr = a.x + b * d;
  float* yr = a.y + b * d;
  float* H = a.state + (a.rows ? a.rows[b] : b) * d * N;  // this row's [d, N]
  for (int64_t c0 = 0; c0 < d; c0 += kLanes) {
    const int cb = static_cast<int>(std::min<int64_t>(kLanes, d - c0));
    __m512 h[16], g[16];
    for (int l = 0; l < 16; ++l) {
      h[l] = g[l] = _mm512_setzero_ps();
      if (l >= cb) continue;
      const int64_t off = (c0 + l) * N;
      const __m512 px = _mm512_mul_ps(_mm512_loadu_ps(a.pb + off), _mm512_set1_ps(valid ? xr[c0 + l] : 0.0f));
      h[l] = _mm512_fmadd_ps(_mm512_loadu_ps(a.q + off), _mm512_loadu_ps(H + off), px);
      _mm512_storeu_ps(H + off, h[l]);
      g[l] = _mm512_loadu_ps(a.g + off);
    }
    transpose16(h);
    transpose16(g);
    __m512 acc = _mm512_setzero_ps();
    for (int m = 0; m < 16; ++m) acc = _mm512_fmadd_ps(g[m], h[m], acc);
    const __mmask16 mask = static_cast<__mmask16>((1u << cb) - 1u);
    const __m512 wx = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a.omega + c0), _mm512_maskz_loadu_ps(mask, xr + c0));
    _mm512_mask_storeu_ps(yr + c0, mask, _mm512_add_ps(acc, wx));  // y + ω·x (raw x)
  }
  silu_in_place(yr, d);  // φ
}
}
LONGVQ_ISA_END
#else  // no AVX copies: the names the drivers dispatch on are the generic one (cpu_isa.h)
namespace v_avx2 = v_generic;
namespace v_avx512 = v_generic;
#endif

}  // namespace

void ema(const OpCall& c, const CpuContext& ctx) {
  using I = EmaIn;
  const TensorRef& xt = c.in(I::x);
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2], N = c.in(I::q).shape[1];
  const bool bidir = c.params.bidirectional;
  const int32_t* lengths = c.params.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  float* state = c.params.stateful ? c.in_as<float>(I::state) : nullptr;
  const int32_t* rows = c.in_as<const int32_t>(I::state_rows);
  if (n == 1 && !bidir && c.params.stateful) {
    const EmaStepArgs a{xt.as<const float>(),
                        c.in_as<const float>(I::q),
                        c.in_as<const float>(I::pb),
                        c.in_as<const float>(I::g),
                        c.in_as<const float>(I::omega),
                        lengths,
                        state,
                        rows,
                        c.out_as<float>(OutY::y),
                        d,
                        N};
    void (*step)(const EmaStepArgs&, int64_t) = v_generic::ema_step_item;
    if (cpu_isa() == CpuIsa::avx512) step = v_avx512::ema_step_item;
    else if (cpu_isa() == CpuIsa::avx2) step = v_avx2::ema_step_item;
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_isa() == CpuIsa::avx512 && N == 16) step = v_avx512::ema_step_item_n16;
#endif
    parallel_for(B, ctx, 4.0 * static_cast<double>(d * N), [&](int64_t b) { step(a, b); });
    return;
  }
  const int64_t nblk = (d + kLanes - 1) / kLanes;
  const int64_t dirs = bidir ? 2 : 1;

  // Pack the coefficients once per call: [dir][blk][q|pb|g][m][lane], channel = dir·d + blk·kLanes + lane.
  // Into the calling thread's scratch slot 1 (the items use slot 0 on every thread, this one too).
  const size_t ncoef = static_cast<size_t>(dirs * nblk * 3 * N * kLanes);
  float* coef = scratch<float>(1, ncoef);
  std::fill(coef, coef + ncoef, 0.0f);
  const float* src[3] = {c.in_as<const float>(I::q), c.in_as<const float>(I::pb), c.in_as<const float>(I::g)};
  for (int64_t dir = 0; dir < dirs; ++dir)
    for (int64_t blk = 0; blk < nblk; ++blk)
      for (int k = 0; k < 3; ++k)
        for (int64_t m = 0; m < N; ++m)
          for (int l = 0; l < kLanes; ++l) {
            const int64_t ch = blk * kLanes + l;
            if (ch < d) coef[(((dir * nblk + blk) * 3 + k) * N + m) * kLanes + l] = src[k][(dir * d + ch) * N + m];
          }

  EmaArgs a{xt.as<const float>(), coef, c.in_as<const float>(I::omega), lengths, state, rows, c.out_as<float>(OutY::y),
            B, n, d, N, bidir};
  void (*item)(const EmaArgs&, int64_t, int64_t) = v_generic::ema_item;
  if (cpu_isa() == CpuIsa::avx512) item = v_avx512::ema_item;
  else if (cpu_isa() == CpuIsa::avx2) item = v_avx2::ema_item;
  parallel_for(B * nblk, ctx, 4.0 * static_cast<double>(dirs * n * N * kLanes),
               [&](int64_t i) { item(a, i / nblk, i % nblk); });
}

}  // namespace longvq::cpu
