// The op list of the LongVQ graph, and the call a backend kernel receives.
//
// Adding an op touches: this list (+ its params and the shape rules in op.cpp), a reference
// kernel (kernels/ref), each backend's kernel (kernels/cpu, kernels/cuda), and one case in the
// op test (tests/ops). Every tensor an op sees is contiguous and row-major; "rows" means the
// product of all dimensions but the last.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace longvq {

// bf16: weight matrices only (linear W, embed_tokens table), on backends that say bf16_weights().
enum class DType : uint8_t { f32, i32, i64, bf16 };
size_t dtype_size(DType);
const char* dtype_name(DType);
// bf16 is the top half of an f32: widening is exact; narrowing rounds to nearest even, as the
// exporter does (finite values).
inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
inline uint16_t f32_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

enum class OpKind : uint8_t {
  embed_tokens,   // out[t] = scale · table[tokens[t]]                          [T] i32, [V,d] → [T,d]
  embed_real,     // out[t] = x[t]·w + b                                        [T], [d], [d] → [T,d]
  norm,           // layer/scale/rms/batch norm over the last axis              [T,d] (+params) → [T,d]
  linear,         // y = act(x·Wᵀ + b)                                          [T,in], [out,in], [out]?, panels? → [T,out]
  ema,            // X' = φ(EMA(x) + ω·x), causal or bidirectional, optional state   see below
  mix_gates,      // split φ/σ of mx_proj's output into u, q, k, r, hx          [T,2d+e+h] → 5 outputs
  vq_codes,       // c = argmin_s ||k − C_s||² (ties → lowest s)                 [T,e], [S,e] → [T] i32
  vq_attention,   // windowed + codebook attention, optional state              see below
  mul,            // y = a ⊙ b                                                  [T,n], [T,n] → [T,n]
  gated_residual, // y = res + u ⊙ (φ(hx + hp) − res)                           4 × [T,d] → [T,d]
  add,            // y = a + b                                                  [T,n], [T,n] → [T,n]
  mean_pool,      // rep[b] = mean over t < len[b] of x[b,t]                    [B,n,d], [B] i32 → [B,d]
  count_
};
const char* op_name(OpKind);

enum class Activation : uint8_t { none, silu, gelu };
enum class NormKind : uint8_t { layernorm, scalenorm, rmsnorm, batchnorm };

// Per-op parameters; each op reads only its own fields.
struct OpParams {
  float scale = 1.0f;                          // embed_tokens
  Activation activation = Activation::none;    // linear
  NormKind norm = NormKind::layernorm;         // norm
  bool affine = true;                          // norm: has weight (and bias / scalar)
  float eps = 1e-5f;                           // norm
  bool bidirectional = false;                  // ema, vq_attention
  bool stateful = false;                       // ema, vq_attention: continue from / update a state
  bool has_lengths = false;                    // ema, vq_attention: right-padded rows (lengths input)
  int window = 0;                              // vq_attention: W
  bool quantize_window_keys = true;            // vq_attention
};

// A tensor as a kernel sees it: where, what type, which shape.
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;

  int64_t numel() const;
  int64_t rows() const;  // all dims but the last
  int64_t cols() const;  // the last dim
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// Inputs and outputs, in the order each op documents below. Optional inputs are always present
// as entries; an absent one has data == nullptr.
//
// norm:          x, weight?, bias? (layer/batch), scalar? (scalenorm: weight slot holds it),
//                running_mean?, running_var? (batch)            → y
//                layout: {x, weight, bias, running_mean, running_var}
// linear:        {x, W, b?, W_panels?}                          → {y}
//                W_panels: the same W in 16-output panels (pack_linear_panels), same dtype; a
//                backend that says wants_linear_panels() reads it instead of W
// ema:           {x [B,n,d], q [D',N], pb [D',N], g [D',N], omega [d], lengths [B]?, state [B,d,N]?}
//                → {y [B,n,d]}; D' = 2d when bidirectional; stateful: state is read and
//                overwritten with the state after the chunk (causal only)
// mix_gates:     {mx [T, 2d+e+h], qk_scale [2,e], qk_offset [2,e]} → {u [T,d], q [T,e], k [T,e], r [T,h], hx [T,d]}
// vq_codes:      {k [T,e], codebook [S,e]}                      → {codes [T] i32}
// vq_attention:  {q [B,n,e], k [B,n,e], v [B,n,h], codes [B,n] i32, codebook [S,e], rel_bias [W+1 | 2W+1],
//                 lengths [B]?, ring_codes [B,W] i32?, ring_values [B,W,h]?, ring_keys [B,W,e]?,
//                 cache_u [B,S,h]?, cache_n [B,S] i32?, pos [B] i64?} → {o [B,n,h]}
//                stateful (causal only): keys are the ring (positions pos−W..pos−1) then the chunk;
//                the state is updated as after n decode steps (ring slot = position mod W).
// mul, add:      {a, b} → {y};  gated_residual: {res, u, hx, hp} → {y};  mean_pool: {x, lengths} → {rep}
struct OpCall {
  OpKind op;
  OpParams params;
  std::vector<TensorRef> inputs;
  std::vector<TensorRef> outputs;
};

// linear's W in panels of kLinearPanel outputs, [ceil(out/16), in, 16] with zero-padded outputs:
// out rows o = 16p..16p+15 of W, transposed, so a kernel that walks `in` reads 16 consecutive
// outputs per step (one vector). A layout of the same values: packing is exact.
inline constexpr int64_t kLinearPanel = 16;
std::vector<int64_t> linear_panels_shape(int64_t out, int64_t in);
void pack_linear_panels(const TensorRef& W, void* dst);  // W [out, in] f32 or bf16 → panels, same dtype

// True when output 0 may share memory with input `in` (elementwise ops); the planner uses it.
bool op_allows_in_place(OpKind op, int in);

}  // namespace longvq
