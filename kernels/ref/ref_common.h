// Small helpers shared by the reference kernels (double-precision activations, tensor access).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/ops/op.h"

namespace longvq::ref {

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }   // σ(x) = 1/(1+e^{−x})
inline double silu(double x) { return x * sigmoid(x); }                   // φ(x) = x·σ(x)  [MEGA: SiLU]
inline double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }  // F.gelu (erf)

inline double activate(Activation a, double x) {
  switch (a) {
    case Activation::none: return x;
    case Activation::silu: return silu(x);
    case Activation::gelu: return gelu(x);
  }
  return x;
}


// A weight matrix (f32, bf16 or q8_0) as f32; a bf16 one is widened, a q8_0 one dequantized,
// into `storage`.
inline const float* matrix_f32(const TensorRef& t, std::vector<float>& storage) {
  if (t.dtype == DType::f32) return t.as<const float>();
  storage.resize(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::q8) {
    const int64_t R = t.rows(), C = t.cols(), nb = q8_blocks(C);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c)
        storage[static_cast<size_t>(r * C + c)] = q8_value(t.q8_values()[r * C + c], t.q8_scales()[r * nb + c / kQ8Block]);
    return storage.data();
  }
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = bf16_to_f32(t.as<const uint16_t>()[i]);
  return storage.data();
}

// Valid length of row b: lengths[b] clamped to [0, n], or n without lengths.
inline int64_t valid_length(const int32_t* lengths, int64_t b, int64_t n) {
  return lengths ? std::clamp<int64_t>(lengths[b], 0, n) : n;
}

}  // namespace longvq::ref
