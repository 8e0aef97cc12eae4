// ema: X' = φ(EMA(x) + ω·x), causal or bidirectional, optionally continued from a state, as the
// recurrence H ← q⊙H + pb·x̃, y = Σ_n g·H (longvq-model.md §2.2). Parallel over (batch row,
// block of kLanes channels); each item scans its channels through time. The bidirectional form
// adds a backward scan with rows d..2d−1 (lag 0 counted twice, as MEGA).
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
