// vq_codes: c_j = argmin_s ||K_j − C_s||² (ties → lowest s), as ||C_s||² − 2·K_j·C_s
// (longvq-model.md §3, attention.py quantize).
#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq {

int ref_vq_code(const float* k, const float* codebook, int64_t S, int64_t e) {
  int best = 0;
  double best_dist = 0;
  for (int64_t s = 0; s < S; ++s) {
    const float* C = codebook + s * e;
    double norm2 = 0, dot = 0;
    for (int64_t i = 0; i < e; ++i) norm2 += static_cast<double>(C[i]) * C[i];  // ||C_s||² = (codebook * codebook).sum(-1)
    for (int64_t i = 0; i < e; ++i) dot += static_cast<double>(k[i]) * C[i];    // K_j·C_s = k @ codebook.T
    const double dist = norm2 - 2.0 * dot;                                      // dist = ||C_s||² − 2·K_j·C_s
    if (s == 0 || dist < best_dist) {                                           // argmin, ties → lowest s
      best = static_cast<int>(s);
      best_dist = dist;
    }
  }
  return best;
}

namespace ref {

void vq_codes(const OpCall& c) {
  const int64_t T = c.in(VqCodesIn::k).rows(), e = c.in(VqCodesIn::k).cols(), S = c.in(VqCodesIn::codebook).shape[0];
  const float* k = c.in_as<const float>(VqCodesIn::k);
  const float* C = c.in_as<const float>(VqCodesIn::codebook);
  int32_t* codes = c.out_as<int32_t>(VqCodesOut::codes);
  for (int64_t t = 0; t < T; ++t) codes[t] = ref_vq_code(k + t * e, C, S, e);
}

}  // namespace ref
}  // namespace longvq
