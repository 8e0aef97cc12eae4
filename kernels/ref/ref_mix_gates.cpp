// mix_gates: everything of §2.1 between mx_proj and the attention (model.py Mix.gates).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void mix_gates(const OpCall& c) {
  const int64_t T = c.inputs[0].rows(), cols = c.inputs[0].cols();
  const int64_t d = c.outputs[0].cols(), e = c.outputs[1].cols(), h = c.outputs[3].cols();
  const float* mx = in_f32(c, 0);
  const float* scale = in_f32(c, 1);   // qk_scale [2, e]
  const float* offset = in_f32(c, 2);  // qk_offset [2, e]
  float* u = out_f32(c, 0);
  float* q = out_f32(c, 1);
  float* k = out_f32(c, 2);
  float* r = out_f32(c, 3);
  float* hx = out_f32(c, 4);
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
