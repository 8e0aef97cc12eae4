// Row-wise and elementwise ops: embed_tokens, embed_real, mix_gates, mul, add, gated_residual,
// mean_pool. Memory-bound; plain loops that GCC vectorizes. Outputs may alias an input where
// op_allows_in_place says so: every y[i] is written after its own inputs are read.
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_common.h"

namespace longvq::cpu {
namespace {

constexpr int64_t kBlock = 1 << 14;  // elements per parallel piece of an elementwise op

template <class F>
void elementwise(int64_t n, const CpuContext& ctx, double cost, F&& f) {
  const int64_t pieces = (n + kBlock - 1) / kBlock;
  parallel_for(pieces, ctx.threads, cost * kBlock, [&](int64_t p) {
    const int64_t lo = p * kBlock, hi = std::min(n, lo + kBlock);
    f(lo, hi);
  });
}

}  // namespace

void embed_tokens(const OpCall& c, const CpuContext& ctx) {
  const int64_t T = c.inputs[0].numel(), V = c.inputs[1].shape[0], d = c.inputs[1].shape[1];
  const int32_t* ids = c.inputs[0].as<const int32_t>();
  const float* E = c.inputs[1].as<const float>();
  float* out = c.outputs[0].as<float>();
  const float scale = c.params.scale;
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V)
      throw std::out_of_range("embed_tokens: token " + std::to_string(ids[t]) + " at " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
  parallel_for(T, ctx.threads, static_cast<double>(d), [&](int64_t t) {
    const float* row = E + ids[t] * d;
    float* o = out + t * d;
    for (int64_t i = 0; i < d; ++i) o[i] = scale * row[i];
  });
}

void embed_real(const OpCall& c, const CpuContext& ctx) {
  const int64_t T = c.inputs[0].numel(), d = c.inputs[1].shape[0];
  const float* x = c.inputs[0].as<const float>();
  const float* w = in_f32(c, 1);
  const float* b = in_f32(c, 2);
  float* out = c.outputs[0].as<float>();
  parallel_for(T, ctx.threads, static_cast<double>(d), [&](int64_t t) {
    float* o = out + t * d;
    const float xt = x[t];
    for (int64_t i = 0; i < d; ++i) o[i] = xt * w[i] + b[i];
  });
}

void mix_gates(const OpCall& c, const CpuContext& ctx) {
  const int64_t T = c.inputs[0].rows(), cols = c.inputs[0].cols();
  const int64_t d = c.outputs[0].cols(), e = c.outputs[1].cols(), h = c.outputs[3].cols();
  const float* mx = in_f32(c, 0);
  const float* scale = in_f32(c, 1);
  const float* offset = in_f32(c, 2);
  float* U = c.outputs[0].as<float>();
  float* Q = c.outputs[1].as<float>();
  float* K = c.outputs[2].as<float>();
  float* R = c.outputs[3].as<float>();
  float* HX = c.outputs[4].as<float>();
  parallel_for(T, ctx.threads, 20.0 * static_cast<double>(cols), [&](int64_t t) {
    const float* row = mx + t * cols;
    for (int64_t i = 0; i < d; ++i) U[t * d + i] = sigmoid(row[i]);
    for (int64_t i = 0; i < e; ++i) {
      const float z = silu(row[d + i]);
      Q[t * e + i] = z * scale[i] + offset[i];
      K[t * e + i] = z * scale[e + i] + offset[e + i];
    }
    for (int64_t i = 0; i < h; ++i) R[t * h + i] = silu(row[d + e + i]);
    for (int64_t i = 0; i < d; ++i) HX[t * d + i] = row[d + e + h + i];
  });
}

void mul(const OpCall& c, const CpuContext& ctx) {
  const float* a = in_f32(c, 0);
  const float* b = in_f32(c, 1);
  float* y = c.outputs[0].as<float>();
  elementwise(c.inputs[0].numel(), ctx, 1.0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] * b[i];
  });
}

void add(const OpCall& c, const CpuContext& ctx) {
  const float* a = in_f32(c, 0);
  const float* b = in_f32(c, 1);
  float* y = c.outputs[0].as<float>();
  elementwise(c.inputs[0].numel(), ctx, 1.0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
  });
}

void gated_residual(const OpCall& c, const CpuContext& ctx) {
  const float* res = in_f32(c, 0);
  const float* u = in_f32(c, 1);
  const float* hx = in_f32(c, 2);
  const float* hp = in_f32(c, 3);
  float* y = c.outputs[0].as<float>();
  elementwise(c.inputs[0].numel(), ctx, 20.0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float r = res[i];
      const float hh = silu(hx[i] + hp[i]);  // Hh = φ(HX + h_proj(O ⊙ R))
      y[i] = r + u[i] * (hh - r);             // Y = res + u ⊙ (Hh − res)
    }
  });
}

void mean_pool(const OpCall& c, const CpuContext& ctx) {
  const int64_t B = c.inputs[0].shape[0], n = c.inputs[0].shape[1], d = c.inputs[0].shape[2];
  const float* x = in_f32(c, 0);
  const int32_t* lengths = tensor_present(c.inputs[1]) ? c.inputs[1].as<const int32_t>() : nullptr;
  float* rep = c.outputs[0].as<float>();
  parallel_for(B, ctx.threads, static_cast<double>(n * d), [&](int64_t b) {
    const int64_t len = valid_length(lengths, b, n);
    float* r = rep + b * d;
    for (int64_t i = 0; i < d; ++i) r[i] = 0.0f;
    for (int64_t t = 0; t < len; ++t) {
      const float* row = x + (b * n + t) * d;
      for (int64_t i = 0; i < d; ++i) r[i] += row[i];
    }
    const float inv = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
    for (int64_t i = 0; i < d; ++i) r[i] *= inv;
  });
}

}  // namespace longvq::cpu
