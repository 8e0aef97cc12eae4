// mul, add, gated_residual and mean_pool (longvq-model.md §2.1, §5; model.py Mix.finish, forward).
// Outputs may alias an input (op_allows_in_place): every y[i] is written after its inputs are read.
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void mul(const OpCall& c) {
  const int64_t n = c.in(BinaryIn::a).numel();
  const float* a = c.in_as<const float>(BinaryIn::a);
  const float* b = c.in_as<const float>(BinaryIn::b);
  float* y = c.out_as<float>(OutY::y);
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];  // O ⊙ R
}

void add(const OpCall& c) {
  const int64_t n = c.in(BinaryIn::a).numel();
  const float* a = c.in_as<const float>(BinaryIn::a);
  const float* b = c.in_as<const float>(BinaryIn::b);
  float* y = c.out_as<float>(OutY::y);
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];  // X + fc2(φ(fc1(·)))
}

void gated_residual(const OpCall& c) {
  using I = GatedResidualIn;
  const int64_t n = c.in(I::res).numel();
  const float* res = c.in_as<const float>(I::res);
  const float* u = c.in_as<const float>(I::u);
  const float* hx = c.in_as<const float>(I::hx);
  const float* hp = c.in_as<const float>(I::hp);
  float* y = c.out_as<float>(OutY::y);
  for (int64_t i = 0; i < n; ++i) {
    const double hh = silu(static_cast<double>(hx[i]) + hp[i]);  // Hh = φ(HX + h_proj(O ⊙ R))
    const double r = res[i];
    y[i] = static_cast<float>(r + u[i] * (hh - r));            // Y = res + u ⊙ (Hh − res)
  }
}

void mean_pool(const OpCall& c) {
  const TensorRef& xt = c.in(MeanPoolIn::x);
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2];
  const float* x = xt.as<const float>();
  const int32_t* lengths = c.in_as<const int32_t>(MeanPoolIn::lengths);
  float* rep = c.out_as<float>(MeanPoolOut::rep);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = valid_length(lengths, b, n);
    for (int64_t i = 0; i < d; ++i) {
      double s = 0;
      for (int64_t t = 0; t < len; ++t) s += x[(b * n + t) * d + i];  // (x * mask).sum(1)
      rep[b * d + i] = len > 0 ? static_cast<float>(s / static_cast<double>(len)) : 0.0f;  // / lengths (0 when empty)
    }
  }
}

}  // namespace longvq::ref
