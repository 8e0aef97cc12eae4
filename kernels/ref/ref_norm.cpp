// The four norms over the last axis (longvq-model.md §2.4, norms.py Norm.forward).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void norm(const OpCall& c) {
  using I = NormIn;
  const TensorRef& xt = c.in(I::x);
  const int64_t T = xt.rows(), d = xt.cols();
  const float* x = xt.as<const float>();
  const float* w = c.in_as<const float>(I::weight);  // weight, or the scalar (scalenorm)
  const float* bias = c.in_as<const float>(I::bias);
  const float* rmean = c.in_as<const float>(I::running_mean);
  const float* rvar = c.in_as<const float>(I::running_var);
  const double eps = c.params.eps;
  const bool affine = c.params.affine;
  float* y = c.out_as<float>(OutY::y);
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * d;
    float* yr = y + t * d;
    switch (c.params.norm) {
      case NormKind::layernorm: {
        double mean = 0;
        for (int64_t i = 0; i < d; ++i) mean += xr[i];
        mean /= static_cast<double>(d);                       // mean = x.mean(-1)
        double var = 0;
        for (int64_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= static_cast<double>(d);                        // var = ((x − mean)²).mean(-1)   (biased)
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (int64_t i = 0; i < d; ++i) {
          const double v = (xr[i] - mean) * rstd;             // y = (x − mean)/sqrt(var + eps)
          yr[i] = static_cast<float>(affine ? v * w[i] + bias[i] : v);  // y·weight + bias
        }
        break;
      }
      case NormKind::scalenorm:
      case NormKind::rmsnorm: {
        double ms = 0;
        for (int64_t i = 0; i < d; ++i) ms += static_cast<double>(xr[i]) * xr[i];
        ms /= static_cast<double>(d);                         // (x·x).mean(-1)
        const double r = 1.0 / std::sqrt(ms + eps);           // y = x / sqrt(mean(x²) + eps)
        for (int64_t i = 0; i < d; ++i) {
          double v = xr[i] * r;
          if (affine) v *= (c.params.norm == NormKind::scalenorm ? static_cast<double>(w[0]) : w[i]);  // · scalar | · weight
          yr[i] = static_cast<float>(v);
        }
        break;
      }
      case NormKind::batchnorm:
        for (int64_t i = 0; i < d; ++i) {
          const double v = (xr[i] - static_cast<double>(rmean[i])) / std::sqrt(rvar[i] + eps);  // (x − rm)/sqrt(rv + eps)
          yr[i] = static_cast<float>(affine ? v * w[i] + bias[i] : v);                           // · weight + bias
        }
        break;
    }
  }
}

}  // namespace longvq::ref
