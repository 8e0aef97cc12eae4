// Helpers shared by the CPU kernels: threading, scratch memory, activations, vectorizable math.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/ops/op.h"
#include "kernels/cpu/cpu_ops.h"

namespace longvq::cpu {

// Runs f(i) for i in [0, n) on up to ctx.threads OpenMP threads (static schedule). The split never
// changes what f computes, so results do not depend on the thread count. Serial when the work
// (n · cost_per_item) is below ctx.min_parallel_work.
template <class F>
void parallel_for(int64_t n, const CpuContext& ctx, double cost_per_item, F&& f) {
  int nt = static_cast<int>(std::min<int64_t>(ctx.threads, n));
  if (static_cast<double>(n) * cost_per_item < ctx.min_parallel_work) nt = 1;
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Per-thread scratch buffers, reused across calls (slot = which buffer of the calling kernel).
template <class T>
T* scratch(int slot, size_t count) {
  thread_local std::vector<T> buffers[8];
  std::vector<T>& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}

// exp(x) for x ≤ 88, relative error ~2e-7 (Cephes expf); inputs below −87 give e^−87 ≈ 1.6e-38
// (callers only pass x = score − max ≤ 0, where that is as good as 0). Branch-free, so loops over
// it auto-vectorize (libm's expf does not without -ffast-math); the library is compiled with
// -fno-trapping-math so that GCC may if-convert the clamps.
inline float fast_exp(float x) {
  float xc = x > -87.0f ? x : -87.0f;  // written so that NaN clamps too (no NaN reaches the int cast)
  xc = xc < 88.0f ? xc : 88.0f;
  const float t = xc * 1.44269504088896341f;
  const float half = std::bit_cast<float>((std::bit_cast<uint32_t>(t) & 0x80000000u) | 0x3f000000u);  // ±0.5
  const int k = static_cast<int>(t + half);  // round(x / ln 2)
  const float kf = static_cast<float>(k);
  float r = xc - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;  // r = x − k·ln 2 (two-part Cody–Waite)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float y = er * std::bit_cast<float>((k + 127) << 23);  // · 2^k
  // NaN in, NaN out, as a bit mask: a float compare-and-select here (x == x ? y : x) stops GCC
  // from vectorizing every loop that calls fast_exp.
  const uint32_t nan = (std::bit_cast<uint32_t>(x) & 0x7fffffffu) > 0x7f800000u ? 0xffffffffu : 0u;
  return std::bit_cast<float>((std::bit_cast<uint32_t>(y) & ~nan) | (std::bit_cast<uint32_t>(x) & nan));
}

// log(x) for finite x > 0, relative error ~2e-7 (Cephes logf); branch-free like fast_exp.
inline float fast_log(float x) {
  const int32_t bits = std::bit_cast<int32_t>(x);
  int e = ((bits >> 23) & 0xff) - 126;
  float m = std::bit_cast<float>((bits & 0x807fffff) | 0x3f000000);  // x = m·2^e, m ∈ [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float ef = static_cast<float>(e);
  y += ef * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + ef * 0.693359375f;
}

// σ and φ through fast_exp (so loops over them vectorize); GELU exact with erf.
inline float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
inline float silu(float x) { return x / (1.0f + fast_exp(-x)); }
inline float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
inline float activate(Activation a, float x) {
  switch (a) {
    case Activation::none: return x;
    case Activation::silu: return silu(x);
    case Activation::gelu: return gelu(x);
  }
  return x;
}

inline int64_t valid_length(const int32_t* lengths, int64_t b, int64_t n) {
  return lengths ? std::clamp<int64_t>(lengths[b], 0, n) : n;
}

// y[i] = silu(y[i]), vectorized for this machine's instruction set; bit-identical to silu()
// (the same IEEE operations per lane). linear's SiLU epilogue (cpu_elementwise.cpp).
void silu_in_place(float* y, int64_t n);

// Per-family entry points (one file each).
void embed_tokens(const OpCall&, const CpuContext&);
void embed_real(const OpCall&, const CpuContext&);
void norm(const OpCall&, const CpuContext&);
void linear(const OpCall&, const CpuContext&);
void ema(const OpCall&, const CpuContext&);
void mix_gates(const OpCall&, const CpuContext&);
void vq_codes(const OpCall&, const CpuContext&);
void vq_attention(const OpCall&, const CpuContext&);
void mul(const OpCall&, const CpuContext&);
void add(const OpCall&, const CpuContext&);
void gated_residual(const OpCall&, const CpuContext&);
void mean_pool(const OpCall&, const CpuContext&);

}  // namespace longvq::cpu
