// embed_tokens and embed_real (longvq-model.md §5, model.py embed_inputs / RealEmbedding).
#include <stdexcept>
#include <string>

#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void embed_tokens(const OpCall& c) {
  const TensorRef& tok = c.in(EmbedTokensIn::tokens);
  const TensorRef& table = c.in(EmbedTokensIn::table);
  const int64_t T = tok.numel(), V = table.shape[0], d = table.shape[1];
  const int32_t* ids = tok.as<const int32_t>();
  std::vector<float> widened;
  const float* E = matrix_f32(table, widened);
  float* out = c.out_as<float>(OutEmbed::out);
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= V)
      throw std::out_of_range("embed_tokens: token " + std::to_string(ids[t]) + " at " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
    for (int64_t i = 0; i < d; ++i)
      out[t * d + i] = static_cast<float>(static_cast<double>(c.params.scale) * E[ids[t] * d + i]);  // x = scale · E[token]
  }
}

void embed_real(const OpCall& c) {
  using I = EmbedRealIn;
  const int64_t T = c.in(I::x).numel(), d = c.in(I::weight).shape[0];
  const float* x = c.in_as<const float>(I::x);
  const float* w = c.in_as<const float>(I::weight);
  const float* b = c.in_as<const float>(I::bias);
  float* out = c.out_as<float>(OutEmbed::out);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i)
      out[t * d + i] = static_cast<float>(static_cast<double>(x[t]) * w[i] + b[i]);  // x.unsqueeze(-1) * weight + bias
}

}  // namespace longvq::ref
