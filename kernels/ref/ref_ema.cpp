// The multi-dimensional damped EMA sublayer X' = φ(EMA(x) + ω·x) (longvq-model.md §2.2, ema.py).
//
// Evaluated as the convolution with the kernel k[c,t] = Σ_n g·pb·q^t (ema_conv), and for a
// stateful chunk as MEGA's continued form (ema_chunk); the fast kernels use the recurrence, so
// the two are independent evaluations of the same definition.
#include <cmath>
#include <vector>

#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {

void ema(const OpCall& c) {
  using I = EmaIn;
  const TensorRef& xt = c.in(I::x);
  const int64_t B = xt.shape[0], n = xt.shape[1], d = xt.shape[2];
  const int64_t Dp = c.in(I::q).shape[0], N = c.in(I::q).shape[1];
  const float* x = xt.as<const float>();
  const float* q = c.in_as<const float>(I::q);    // q = 1 − σ(delta)·σ(alpha)       [D', N]
  const float* pb = c.in_as<const float>(I::pb);  // pb = σ(delta)·beta               [D', N]
  const float* g = c.in_as<const float>(I::g);    // g = gamma·sqrt(1/N)              [D', N]
  const float* omega = c.in_as<const float>(I::omega);
  const int32_t* lengths = c.params.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  float* states = c.params.stateful ? c.in_as<float>(I::state) : nullptr;  // H [R, d, N]
  const int32_t* rows = c.in_as<const int32_t>(I::state_rows);            // state row of batch row b
  float* y = c.out_as<float>(OutY::y);

  // power(c, m, t) = q[c,m]^t
  auto power = [&](int64_t ch, int64_t m, int64_t t) { return std::pow(static_cast<double>(q[ch * N + m]), static_cast<double>(t)); };
  // k[c,t] = Σ_n g[c,n]·pb[c,n]·q[c,n]^t                           (ema_kernel)
  std::vector<double> kern(static_cast<size_t>(Dp * n));
  for (int64_t ch = 0; ch < Dp; ++ch)
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t m = 0; m < N; ++m) s += static_cast<double>(g[ch * N + m]) * pb[ch * N + m] * power(ch, m, t);
      kern[ch * n + t] = s;
    }

  std::vector<double> xm(static_cast<size_t>(n));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = valid_length(lengths, b, n);
    float* state = states ? states + (rows ? rows[b] : b) * d * N : nullptr;  // this sequence's H [d, N]
    for (int64_t ch = 0; ch < d; ++ch) {
      for (int64_t j = 0; j < n; ++j)
        xm[j] = j < len ? x[(b * n + j) * d + ch] : 0.0;  // xm = x * mask   (pads zeroed before the sum)
      for (int64_t t = 0; t < n; ++t) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) acc += kern[ch * n + (t - j)] * xm[j];  // y[t,c] = Σ_{j≤t} k[c,t−j]·x[j,c]
        if (c.params.bidirectional)
          for (int64_t j = t; j < n; ++j) acc += kern[(ch + d) * n + (j - t)] * xm[j];  // + Σ_{j≥t} k[c+d,j−t]·x[j,c]
        if (state)
          for (int64_t m = 0; m < N; ++m)  // + Σ_n g·q^{t+1}·H_prev                (ema_chunk)
            acc += static_cast<double>(g[ch * N + m]) * power(ch, m, t + 1) * state[ch * N + m];
        const double xr = x[(b * n + t) * d + ch];
        y[(b * n + t) * d + ch] = static_cast<float>(silu(acc + omega[ch] * xr));  // silu(y + omega·x), raw x
      }
      if (state)
        for (int64_t m = 0; m < N; ++m) {
          // H_new = q^T·H_prev + Σ_j pb·q^{T−1−j}·x[j]                               (ema_chunk)
          double h = power(ch, m, n) * state[ch * N + m];
          for (int64_t j = 0; j < n; ++j) h += static_cast<double>(pb[ch * N + m]) * power(ch, m, n - 1 - j) * xm[j];
          state[ch * N + m] = static_cast<float>(h);
        }
    }
  }
}

}  // namespace longvq::ref
