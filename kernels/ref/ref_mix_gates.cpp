// mix_gates: everything of §2.1 between mx_proj and the attention (model.py Mix.gates).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void mix_gates(const OpCall& c) {
  using I = MixGatesIn;
  using O = MixGatesOut;
  const int64_t T = c.in(I::mx).rows(), cols = c.in(I::mx).cols();
  const int64_t d = c.out(O::u).cols(), e = c.out(O::q).cols(), h = c.out(O::r).cols();
  const float* mx = c.in_as<const float>(I::mx);
  const float* scale = c.in_as<const float>(I::qk_scale);    // qk_scale [2, e]
  const float* offset = c.in_as<const float>(I::qk_offset);  // qk_offset [2, e]
  float* u = c.out_as<float>(O::u);
  float* q = c.out_as<float>(O::q);
  float* k = c.out_as<float>(O::k);
  float* r = c.out_as<float>(O::r);
  float* hx = c.out_as<float>(O::hx);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = mx + t * cols;
    for (int64_t i = 0; i < d; ++i) u[t * d + i] = static_cast<float>(sigmoid(row[i]));  // u = σ(mx[..., :d])
    for (int64_t i = 0; i < e; ++i) {
      const double z = silu(row[d + i]);  // Z = φ(mx[..., d:d+e])
      q[t * e + i] = static_cast<float>(z * scale[i] + offset[i]);          // Q = Z ⊙ qk_scale[0] + qk_offset[0]
      k[t * e + i] = static_cast<float>(z * scale[e + i] + offset[e + i]);  // K = Z ⊙ qk_scale[1] + qk_offset[1]
    }
    for (int64_t i = 0; i < h; ++i) r[t * h + i] = static_cast<float>(silu(row[d + e + i]));  // R = φ(mx[..., d+e:d+e+h])
    for (int64_t i = 0; i < d; ++i) hx[t * d + i] = row[d + e + h + i];                      // HX = mx[..., d+e+h:]
  }
}

}  // namespace longvq::ref
