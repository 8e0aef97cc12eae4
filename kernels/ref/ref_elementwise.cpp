// mul, add, gated_residual and mean_pool (longvq-model.md §2.1, §5; model.py Mix.finish, forward).
// Outputs may alias an input (op_allows_in_place): every y[i] is written after its inputs are read.
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void mul(const OpCall& c) {
  const int64_t n = c.inputs[0].numel();
  const float* a = in_f32(c, 0);
  const float* b = in_f32(c, 1);
  float* y = out_f32(c, 0);
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];  // O ⊙ R
}

void add(const OpCall& c) {
  const int64_t n = c.inputs[0].numel();
  const float* a = in_f32(c, 0);
  const float* b = in_f32(c, 1);
  float* y = out_f32(c, 0);
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];  // X + fc2(φ(fc1(·)))
}

void gated_residual(const OpCall& c) {
  const int64_t n = c.inputs[0].numel();
  const float* res = in_f32(c, 0);
  const float* u = in_f32(c, 1);
  const float* hx = in_f32(c, 2);
  const float* hp = in_f32(c, 3);
  float* y = out_f32(c, 0);
  for (int64_t i = 0; i < n; ++i) {
    const double hh = silu(static_cast<double>(hx[i]) + hp[i]);  // Hh = φ(HX + h_proj(O ⊙ R))
    const double r = res[i];
    y[i] = static_cast<float>(r + u[i] * (hh - r));            // Y = res + u ⊙ (Hh − res)
  }
}

void mean_pool(const OpCall& c) {
  const TensorRef& xt = c.inputs[0];
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2];
  const float* x = xt.as<const float>();
  const int32_t* lengths = tensor_present(c.inputs[1]) ? c.inputs[1].as<const int32_t>() : nullptr;
  float* rep = out_f32(c, 0);
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
