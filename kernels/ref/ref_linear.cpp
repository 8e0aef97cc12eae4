// linear: y = act(x·Wᵀ + b), W stored [out, in] (PyTorch nn.Linear; longvq-model.md §2).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void linear(const OpCall& c) {
  const TensorRef& xt = c.in(LinearIn::x);
  const TensorRef& wt = c.in(LinearIn::W);  // dense: the reference backend prepares no weight layout
  const int64_t T = xt.rows(), K = xt.cols(), N = wt.shape[0];
  const float* x = xt.as<const float>();
  std::vector<float> widened;
  const float* W = matrix_f32(wt, widened);
  const float* b = c.in_as<const float>(LinearIn::b);
  float* y = c.out_as<float>(OutY::y);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < N; ++o) {
      double acc = b ? b[o] : 0.0;                                         // + b
      for (int64_t i = 0; i < K; ++i) acc += static_cast<double>(x[t * K + i]) * W[o * K + i];  // x·Wᵀ
      y[t * N + o] = static_cast<float>(activate(c.params.activation, acc));  // act(·): none | F.silu | F.gelu
    }
}

}  // namespace longvq::ref
