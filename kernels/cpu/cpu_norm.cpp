// norm: layernorm | scalenorm | rmsnorm | batchnorm over the last axis, one row per work item.
// Row sums use 8 independent lanes combined in a fixed order, so GCC vectorizes them.
#include "kernels/cpu/cpu_common.h"

namespace longvq::cpu {
namespace {

inline float lane_sum(const float acc[8]) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

float row_sum(const float* x, int64_t d) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
  float s = lane_sum(acc);
  for (; i < d; ++i) s += x[i];
  return s;
}

float row_sq_dev(const float* x, int64_t d, float mean) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float v = x[i + l] - mean;
      acc[l] += v * v;
    }
  float s = lane_sum(acc);
  for (; i < d; ++i) s += (x[i] - mean) * (x[i] - mean);
  return s;
}

}  // namespace

void norm(const OpCall& c, const CpuContext& ctx) {
  using I = NormIn;
  const TensorRef& xt = c.in(I::x);
  const int64_t T = xt.rows(), d = xt.cols();
  const float* x = xt.as<const float>();
  const float* w = c.in_as<const float>(I::weight);  // or the scalar (scalenorm)
  const float* bias = c.in_as<const float>(I::bias);
  const float* rmean = c.in_as<const float>(I::running_mean);
  const float* rvar = c.in_as<const float>(I::running_var);
  const float eps = c.params.eps;
  const bool affine = c.params.affine;
  const NormKind kind = c.params.norm;
  float* y = c.out_as<float>(OutY::y);
  const float inv_d = 1.0f / static_cast<float>(d);

  // batchnorm: per-channel 1/sqrt(running_var + eps), once per call.
  std::vector<float> inv_std;
  if (kind == NormKind::batchnorm) {
    inv_std.resize(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) inv_std[i] = 1.0f / std::sqrt(rvar[i] + eps);
  }
  const float* istd = inv_std.data();

  parallel_for(T, ctx, 6.0 * static_cast<double>(d), [&](int64_t t) {
    const float* xr = x + t * d;
    float* yr = y + t * d;
    switch (kind) {
      case NormKind::layernorm: {
        const float mean = row_sum(xr, d) * inv_d;
        const float var = row_sq_dev(xr, d, mean) * inv_d;
        const float rstd = 1.0f / std::sqrt(var + eps);
        if (affine)
          for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mean) * rstd * w[i] + bias[i];
        else
          for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mean) * rstd;
        break;
      }
      case NormKind::scalenorm:
      case NormKind::rmsnorm: {
        const float r = 1.0f / std::sqrt(row_sq_dev(xr, d, 0.0f) * inv_d + eps);
        if (!affine)
          for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r;
        else if (kind == NormKind::scalenorm)
          for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * w[0];
        else
          for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * w[i];
        break;
      }
      case NormKind::batchnorm:
        if (affine)
          for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - rmean[i]) * istd[i] * w[i] + bias[i];
        else
          for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - rmean[i]) * istd[i];
        break;
    }
  });
}

}  // namespace longvq::cpu
