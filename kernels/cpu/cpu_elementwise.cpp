// Row-wise and elementwise ops: embed_tokens, embed_real, mix_gates, mul, add, gated_residual,
// mean_pool. Memory-bound; plain loops that GCC vectorizes (the activation-heavy mix_gates and
// gated_residual once per instruction set, cpu_gates_body.inc). Outputs may alias an input where
// op_allows_in_place says so: every y[i] is written after its own inputs are read.
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_isa.h"

namespace longvq::cpu {
namespace {

struct GatesArgs {
  const float *mx, *scale, *offset;
  float *u, *q, *k, *r, *hx;
  int64_t d, e, h;
};

namespace v_generic {
#include "kernels/cpu/cpu_gates_body.inc"
}
#if defined(__x86_64__) || defined(__i386__)
LONGVQ_ISA_BEGIN_AVX2
namespace v_avx2 {
#include "kernels/cpu/cpu_gates_body.inc"
}
LONGVQ_ISA_END
LONGVQ_ISA_BEGIN_AVX512
namespace v_avx512 {
#include "kernels/cpu/cpu_gates_body.inc"
}
LONGVQ_ISA_END
#else  // no AVX copies: the names the drivers dispatch on are the generic one (cpu_isa.h)
namespace v_avx2 = v_generic;
namespace v_avx512 = v_generic;
#endif

constexpr int64_t kBlock = 1 << 14;  // elements per parallel piece of an elementwise op

template <class F>
void elementwise(int64_t n, const CpuContext& ctx, double cost, F&& f) {
  const int64_t pieces = (n + kBlock - 1) / kBlock;
  parallel_for(pieces, ctx, cost * kBlock, [&](int64_t p) {
    const int64_t lo = p * kBlock, hi = std::min(n, lo + kBlock);
    f(lo, hi);
  });
}

}  // namespace

void embed_tokens(const OpCall& c, const CpuContext& ctx) {
  const TensorRef& table = c.in(EmbedTokensIn::table);
  const int64_t T = c.in(EmbedTokensIn::tokens).numel(), V = table.shape[0], d = table.shape[1];
  const int32_t* ids = c.in_as<const int32_t>(EmbedTokensIn::tokens);
  float* out = c.out_as<float>(OutEmbed::out);
  const float scale = c.params.scale;
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V)
      throw std::out_of_range("embed_tokens: token " + std::to_string(ids[t]) + " at " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
  if (table.dtype == DType::q8) {  // the looked-up row is dequantized (exact), then scaled as f32
    const int8_t* Q = table.q8_values();
    const float* S = table.q8_scales();
    const int64_t nb = q8_blocks(d);
    parallel_for(T, ctx, static_cast<double>(d), [&](int64_t t) {
      const int8_t* row = Q + ids[t] * d;
      const float* sc = S + ids[t] * nb;
      float* o = out + t * d;
      for (int64_t i = 0; i < d; ++i) o[i] = scale * q8_value(row[i], sc[i / kQ8Block]);
    });
    return;
  }
  if (table.dtype == DType::bf16) {
    const uint16_t* E = table.as<const uint16_t>();
    parallel_for(T, ctx, static_cast<double>(d), [&](int64_t t) {
      const uint16_t* row = E + ids[t] * d;
      float* o = out + t * d;
      for (int64_t i = 0; i < d; ++i) o[i] = scale * bf16_to_f32(row[i]);
    });
    return;
  }
  const float* E = table.as<const float>();
  parallel_for(T, ctx, static_cast<double>(d), [&](int64_t t) {
    const float* row = E + ids[t] * d;
    float* o = out + t * d;
    for (int64_t i = 0; i < d; ++i) o[i] = scale * row[i];
  });
}

void embed_real(const OpCall& c, const CpuContext& ctx) {
  using I = EmbedRealIn;
  const int64_t T = c.in(I::x).numel(), d = c.in(I::weight).shape[0];
  const float* x = c.in_as<const float>(I::x);
  const float* w = c.in_as<const float>(I::weight);
  const float* b = c.in_as<const float>(I::bias);
  float* out = c.out_as<float>(OutEmbed::out);
  parallel_for(T, ctx, static_cast<double>(d), [&](int64_t t) {
    float* o = out + t * d;
    const float xt = x[t];
    for (int64_t i = 0; i < d; ++i) o[i] = xt * w[i] + b[i];
  });
}

void mix_gates(const OpCall& c, const CpuContext& ctx) {
  using I = MixGatesIn;
  using O = MixGatesOut;
  const int64_t T = c.in(I::mx).rows(), cols = c.in(I::mx).cols();
  const GatesArgs a{c.in_as<const float>(I::mx), c.in_as<const float>(I::qk_scale), c.in_as<const float>(I::qk_offset),
                    c.out_as<float>(O::u),       c.out_as<float>(O::q),            c.out_as<float>(O::k),
                    c.out_as<float>(O::r),       c.out_as<float>(O::hx),           c.out(O::u).cols(),
                    c.out(O::q).cols(),          c.out(O::r).cols()};
  void (*row)(const GatesArgs&, int64_t) = v_generic::gates_row;
  if (cpu_isa() == CpuIsa::avx512) row = v_avx512::gates_row;
  else if (cpu_isa() == CpuIsa::avx2) row = v_avx2::gates_row;
  parallel_for(T, ctx, 20.0 * static_cast<double>(cols), [&](int64_t t) { row(a, t); });
}

void mul(const OpCall& c, const CpuContext& ctx) {
  const float* a = c.in_as<const float>(BinaryIn::a);
  const float* b = c.in_as<const float>(BinaryIn::b);
  float* y = c.out_as<float>(OutY::y);
  elementwise(c.in(BinaryIn::a).numel(), ctx, 1.0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] * b[i];
  });
}

void add(const OpCall& c, const CpuContext& ctx) {
  const float* a = c.in_as<const float>(BinaryIn::a);
  const float* b = c.in_as<const float>(BinaryIn::b);
  float* y = c.out_as<float>(OutY::y);
  elementwise(c.in(BinaryIn::a).numel(), ctx, 1.0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
  });
}

void gated_residual(const OpCall& c, const CpuContext& ctx) {
  using I = GatedResidualIn;
  const float* res = c.in_as<const float>(I::res);
  const float* u = c.in_as<const float>(I::u);
  const float* hx = c.in_as<const float>(I::hx);
  const float* hp = c.in_as<const float>(I::hp);
  float* y = c.out_as<float>(OutY::y);
  auto range = v_generic::gated_residual_range;
  if (cpu_isa() == CpuIsa::avx512) range = v_avx512::gated_residual_range;
  else if (cpu_isa() == CpuIsa::avx2) range = v_avx2::gated_residual_range;
  elementwise(c.in(I::res).numel(), ctx, 20.0, [&](int64_t lo, int64_t hi) { range(res, u, hx, hp, y, lo, hi); });
}

void silu_in_place(float* y, int64_t n) {
  if (cpu_isa() == CpuIsa::avx512) return v_avx512::silu_range(y, n);
  if (cpu_isa() == CpuIsa::avx2) return v_avx2::silu_range(y, n);
  v_generic::silu_range(y, n);
}

void mean_pool(const OpCall& c, const CpuContext& ctx) {
  const TensorRef& xt = c.in(MeanPoolIn::x);
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2];
  const float* x = xt.as<const float>();
  const int32_t* lengths = c.in_as<const int32_t>(MeanPoolIn::lengths);
  float* rep = c.out_as<float>(MeanPoolOut::rep);
  parallel_for(B, ctx, static_cast<double>(n * d), [&](int64_t b) {
    const int64_t len = valid_length(lengths, b, n);
    float* r = rep + b * d;
    for (int64_t i = 0; i < d; ++i) r[i] = 0.0f;
    for (int64_t t = 0; t < len; ++t) {
      const float* row = x + (b * n + t) * d;
      for (int64_t i = 0; i < d; ++i) r[i] += row[i];
    }
    const float inv = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
    for (int64_t i = 0; i < d; ++i) r[i] *= inv;
  });
}

}  // namespace longvq::cpu
