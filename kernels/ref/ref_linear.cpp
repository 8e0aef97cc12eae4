// linear: y = act(x·Wᵀ + b), W stored [out, in] (PyTorch nn.Linear; longvq-model.md §2).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void linear(const OpCall& c) {
  const TensorRef& xt = c.inputs[0];
  const int64_t T = xt.rows(), K = xt.cols(), N = c.inputs[1].shape[0];
  const float* x = xt.as<const float>();
  std::vector<float> widened;
  const float* W = matrix_f32(c.inputs[1], widened);
  const float* b = in_f32(c, 2);
  float* y = out_f32(c, 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < N; ++o) {
      double acc = b ? b[o] : 0.0;                                         // + b
      for (int64_t i = 0; i < K; ++i) acc += static_cast<double>(x[t * K + i]) * W[o * K + i];  // x·Wᵀ
      y[t * N + o] = static_cast<float>(activate(c.params.activation, acc));  // act(·): none | F.silu | F.gelu
    }
}

}  // namespace longvq::ref
