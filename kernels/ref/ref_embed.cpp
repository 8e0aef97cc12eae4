// embed_tokens and embed_real (longvq-model.md §5, model.py embed_inputs / RealEmbedding).
#include <stdexcept>
#include <string>

#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void embed_tokens(const OpCall& c) {
  const TensorRef& tok = c.inputs[0];
  const TensorRef& table = c.inputs[1];
  const int64_t T = tok.numel(), V = table.shape[0], d = table.shape[1];
  const int32_t* ids = tok.as<const int32_t>();
  std::vector<float> widened;
  const float* E = matrix_f32(table, widened);
  float* out = out_f32(c, 0);
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= V)
      throw std::out_of_range("embed_tokens: token " + std::to_string(ids[t]) + " at " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
    for (int64_t i = 0; i < d; ++i)
      out[t * d + i] = static_cast<float>(static_cast<double>(c.params.scale) * E[ids[t] * d + i]);  // x = scale · E[token]
  }
}

void embed_real(const OpCall& c) {
  const int64_t T = c.inputs[0].numel(), d = c.inputs[1].shape[0];
  const float* x = in_f32(c, 0);
  const float* w = in_f32(c, 1);
  const float* b = in_f32(c, 2);
  float* out = out_f32(c, 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i)
      out[t * d + i] = static_cast<float>(static_cast<double>(x[t]) * w[i] + b[i]);  // x.unsqueeze(-1) * weight + bias
}

}  // namespace longvq::ref
