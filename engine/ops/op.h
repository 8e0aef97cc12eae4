// The op vocabulary of the LongVQ graph: dtypes, the tensors a kernel sees, one descriptor per op
// with its named input and output slots, and the call a backend kernel receives. This layer
// depends on nothing else in the project; kernels, backends and the runtime build on it.
//
// Adding an op touches: its slot lists and descriptor here (+ the table in op.cpp), its shape
// rules in op_check.cpp, a reference kernel (kernels/ref), each backend's kernel (kernels/cpu,
// kernels/cuda), and one case in the op test (tests/ops). Every tensor an op sees is contiguous;
// "rows" means the product of all dimensions but the last.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace longvq {

// bf16: weight matrices only (linear W, embed_tokens table), on backends whose device says
// bf16_weights(). q8 ("q8_0"): the same matrices block-quantized to int8, on backends whose device
// says q8_weights() (layout below).
enum class DType : uint8_t { f32, i32, i64, bf16, q8 };
size_t dtype_size(DType);
const char* dtype_name(DType);
// bf16 is the top half of an f32: widening is exact; narrowing rounds to nearest even, as the
// exporter does (finite values).
inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
inline uint16_t f32_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// q8: a matrix [R, C] as int8 values with one scale per block of kQ8Block consecutive values of a
// row (the last block of a row may be shorter): value[r][c] = float(q[r][c]) · scale[r][c / 32].
// Dense layout (one buffer): the R·C int8 values row-major, then, from q8_scales_offset(R, C)
// (R·C rounded up to 64 bytes), the R × q8_blocks(C) scales as f32. Files store the scales as
// f16 (docs/file-formats.md), so the product has at most 8 + 11 significant bits: exact in f32,
// the same value however it is computed. dtype_size(q8) is 1 (the values); nbytes() counts both.
inline constexpr int64_t kQ8Block = 32;
inline int64_t q8_blocks(int64_t cols) { return (cols + kQ8Block - 1) / kQ8Block; }
inline size_t q8_scales_offset(int64_t rows, int64_t cols) { return static_cast<size_t>(rows * cols + 63) / 64 * 64; }
inline size_t q8_bytes(int64_t rows, int64_t cols) {
  return q8_scales_offset(rows, cols) + static_cast<size_t>(rows * q8_blocks(cols)) * sizeof(float);
}
inline float q8_value(int8_t q, float scale) { return static_cast<float>(q) * scale; }

enum class OpKind : uint8_t {
  embed_tokens,   // out[t] = scale · table[tokens[t]]                          [T] i32, [V,d] → [T,d]
  embed_real,     // out[t] = x[t]·w + b                                        [T], [d], [d] → [T,d]
  norm,           // layer/scale/rms/batch norm over the last axis              [T,d] (+params) → [T,d]
  linear,         // y = act(x·Wᵀ + b)                                          [T,in], [out,in], [out]? → [T,out]
  ema,            // X' = φ(EMA(x) + ω·x), causal or bidirectional, optional state
  mix_gates,      // split φ/σ of mx_proj's output into u, q, k, r, hx          [T,2d+e+h] → 5 outputs
  vq_codes,       // c = argmin_s ||k − C_s||² (ties → lowest s)                 [T,e], [S,e] → [T] i32
  vq_attention,   // windowed + codebook attention, optional state
  mul,            // y = a ⊙ b                                                  [T,n], [T,n] → [T,n]
  gated_residual, // y = res + u ⊙ (φ(hx + hp) − res)                           4 × [T,d] → [T,d]
  add,            // y = a + b                                                  [T,n], [T,n] → [T,n]
  mean_pool,      // rep[b] = mean over t < len[b] of x[b,t]                    [B,n,d], [B] i32 → [B,d]
  count_
};

enum class Activation : uint8_t { none, silu, gelu };
enum class NormKind : uint8_t { layernorm, scalenorm, rmsnorm, batchnorm };

// --- Named slots ----------------------------------------------------------------------------
// Each op's inputs and outputs, in OpCall order, written once: the X-lists below make both the
// enum a kernel indexes with (c.in(EmaIn::state)) and the names the checker and dumps print.
// Optional inputs are always present as entries; an absent one has data == nullptr.
//
// norm: scalenorm keeps its scalar in the weight slot; running_* are batchnorm's.
// linear: W may be in a backend's private layout (TensorRef::layout); the rest is dense.
// ema: x [B,n,d], q/pb/g [D',N] (D' = 2d when bidirectional), omega [d], lengths [B]?,
//      state [R,d,N]? (stateful: read, then overwritten with the state after the chunk; causal
//      only), state_rows [B] i32? (the state row of batch row b; absent: row b of a B-row state).
// vq_attention: q/k [B,n,e], v [B,n,h], codes [B,n] i32, codebook [S,e], rel_bias [W+1 | 2W+1],
//      lengths [B]?; the state (stateful, causal only): ring_codes [R,W] i32, ring_values [R,W,h],
//      ring_keys [R,W,e] (raw window keys), cache_u [R,S,h], cache_n [R,S] i32, pos [R] i64,
//      state_rows [B] i32? as for ema. Keys are the ring (positions pos−W..pos−1) then the chunk;
//      the state is updated as after n decode steps (ring slot = position mod W).
#define LONGVQ_EMBED_TOKENS_IN(X) X(tokens) X(table)
#define LONGVQ_EMBED_REAL_IN(X) X(x) X(weight) X(bias)
#define LONGVQ_NORM_IN(X) X(x) X(weight) X(bias) X(running_mean) X(running_var)
#define LONGVQ_LINEAR_IN(X) X(x) X(W) X(b)
#define LONGVQ_EMA_IN(X) X(x) X(q) X(pb) X(g) X(omega) X(lengths) X(state) X(state_rows)
#define LONGVQ_MIX_GATES_IN(X) X(mx) X(qk_scale) X(qk_offset)
#define LONGVQ_MIX_GATES_OUT(X) X(u) X(q) X(k) X(r) X(hx)
#define LONGVQ_VQ_CODES_IN(X) X(k) X(codebook)
#define LONGVQ_VQ_ATTENTION_IN(X)                                                                   \
  X(q) X(k) X(v) X(codes) X(codebook) X(rel_bias) X(lengths) X(ring_codes) X(ring_values) X(ring_keys) \
  X(cache_u) X(cache_n) X(pos) X(state_rows)
#define LONGVQ_BINARY_IN(X) X(a) X(b)
#define LONGVQ_GATED_RESIDUAL_IN(X) X(res) X(u) X(hx) X(hp)
#define LONGVQ_MEAN_POOL_IN(X) X(x) X(lengths)
#define LONGVQ_OUT_Y(X) X(y)
#define LONGVQ_OUT_OUT(X) X(out)
#define LONGVQ_OUT_CODES(X) X(codes)
#define LONGVQ_OUT_O(X) X(o)
#define LONGVQ_OUT_REP(X) X(rep)

#define LONGVQ_SLOT_ENUM_(n) n,
#define LONGVQ_SLOT_NAME_(n) #n,
#define LONGVQ_SLOTS_(Enum, LIST)                                    \
  enum class Enum : uint8_t { LIST(LONGVQ_SLOT_ENUM_) count_ };      \
  inline constexpr const char* Enum##Names[] = {LIST(LONGVQ_SLOT_NAME_)};

LONGVQ_SLOTS_(EmbedTokensIn, LONGVQ_EMBED_TOKENS_IN)
LONGVQ_SLOTS_(EmbedRealIn, LONGVQ_EMBED_REAL_IN)
LONGVQ_SLOTS_(NormIn, LONGVQ_NORM_IN)
LONGVQ_SLOTS_(LinearIn, LONGVQ_LINEAR_IN)
LONGVQ_SLOTS_(EmaIn, LONGVQ_EMA_IN)
LONGVQ_SLOTS_(MixGatesIn, LONGVQ_MIX_GATES_IN)
LONGVQ_SLOTS_(MixGatesOut, LONGVQ_MIX_GATES_OUT)
LONGVQ_SLOTS_(VqCodesIn, LONGVQ_VQ_CODES_IN)
LONGVQ_SLOTS_(VqAttentionIn, LONGVQ_VQ_ATTENTION_IN)
LONGVQ_SLOTS_(BinaryIn, LONGVQ_BINARY_IN)  // mul, add
LONGVQ_SLOTS_(GatedResidualIn, LONGVQ_GATED_RESIDUAL_IN)
LONGVQ_SLOTS_(MeanPoolIn, LONGVQ_MEAN_POOL_IN)
LONGVQ_SLOTS_(OutY, LONGVQ_OUT_Y)          // norm, linear, ema, mul, add, gated_residual
LONGVQ_SLOTS_(OutEmbed, LONGVQ_OUT_OUT)    // embed_tokens, embed_real
LONGVQ_SLOTS_(VqCodesOut, LONGVQ_OUT_CODES)
LONGVQ_SLOTS_(VqAttentionOut, LONGVQ_OUT_O)
LONGVQ_SLOTS_(MeanPoolOut, LONGVQ_OUT_REP)

// --- Parameters -----------------------------------------------------------------------------
// Which OpParams fields an op reads (its descriptor's `params`), as bits.
enum ParamField : uint32_t {
  kParamScale = 1u << 0,
  kParamActivation = 1u << 1,
  kParamNorm = 1u << 2,
  kParamAffine = 1u << 3,
  kParamEps = 1u << 4,
  kParamBidirectional = 1u << 5,
  kParamStateful = 1u << 6,
  kParamHasLengths = 1u << 7,
  kParamWindow = 1u << 8,
  kParamQuantizeWindowKeys = 1u << 9,
};

// Per-op parameters; each op reads only the fields its descriptor names.
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

  // Calls f(name, value) for each field in `mask` (every field's value is exact as a double):
  // the one list of the fields, for dumps, messages and keys. A new field goes here too.
  template <class F>
  void visit(uint32_t mask, F&& f) const {
    auto one = [&](ParamField bit, const char* name, auto v) {
      if (mask & bit) f(name, static_cast<double>(v));
    };
    one(kParamScale, "scale", scale);
    one(kParamActivation, "activation", static_cast<int>(activation));
    one(kParamNorm, "norm", static_cast<int>(norm));
    one(kParamAffine, "affine", affine);
    one(kParamEps, "eps", eps);
    one(kParamBidirectional, "bidirectional", bidirectional);
    one(kParamStateful, "stateful", stateful);
    one(kParamHasLengths, "has_lengths", has_lengths);
    one(kParamWindow, "window", window);
    one(kParamQuantizeWindowKeys, "quantize_window_keys", quantize_window_keys);
  }
};
// A field added to OpParams must be added to visit() (and to ParamField): this fails until then.
static_assert(sizeof(OpParams) == 24, "OpParams changed: update OpParams::visit and ParamField");

// --- Descriptors ----------------------------------------------------------------------------
struct OpDesc {
  OpKind kind;
  const char* name;
  std::span<const char* const> inputs;   // slot names, in OpCall::inputs order
  std::span<const char* const> outputs;  // slot names, in OpCall::outputs order
  uint32_t params;                       // ParamField bits the op reads
  uint32_t in_place;                     // bit i: output 0 may share memory with input i (elementwise)
  uint32_t private_layout;               // bit i: input i may be in a backend's private weight layout
};
const OpDesc& op_desc(OpKind);
inline const char* op_name(OpKind op) { return op_desc(op).name; }
// "vq_attention(bidirectional=0, stateful=1, has_lengths=0, window=32, quantize_window_keys=1)":
// the op with the params its descriptor says it reads.
std::string describe_op(OpKind op, const OpParams& params);
// True when output 0 may share memory with input `in` (the planner uses it).
inline bool op_allows_in_place(OpKind op, int in) { return (op_desc(op).in_place >> in) & 1u; }

// --- Tensors and calls ----------------------------------------------------------------------
// A tensor as a kernel sees it: where, what type, which shape.
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  // 0: dense row-major, what everything but a prepared weight is. Another value marks a weight
  // in a backend's private layout (Device::prepare_weight: e.g. the CPU's linear panels) with the
  // same logical shape and dtype; only that backend's kernels know what it means.
  uint8_t layout = 0;

  int64_t numel() const;
  int64_t rows() const;  // all dims but the last
  int64_t cols() const;  // the last dim
  size_t nbytes() const {  // dense size
    return dtype == DType::q8 ? q8_bytes(rows(), cols()) : static_cast<size_t>(numel()) * dtype_size(dtype);
  }
  // A dense q8 tensor's parts (the layout above).
  const int8_t* q8_values() const { return static_cast<const int8_t*>(data); }
  const float* q8_scales() const {
    return reinterpret_cast<const float*>(static_cast<const char*>(data) + q8_scales_offset(rows(), cols()));
  }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// Whether an optional tensor is given: data != nullptr, or it has a shape with zero elements
// (a zero-size buffer may have no memory, e.g. the ring of a W = 0 model). A default TensorRef
// (no data, no shape) is absent.
bool tensor_present(const TensorRef& t);

struct OpCall {
  OpKind op;
  OpParams params;
  std::vector<TensorRef> inputs;   // in the order of op_desc(op).inputs
  std::vector<TensorRef> outputs;  // in the order of op_desc(op).outputs

  // Named access: c.in(EmaIn::state), c.out(MixGatesOut::k).
  template <class Slot> const TensorRef& in(Slot s) const { return inputs[static_cast<size_t>(s)]; }
  template <class Slot> const TensorRef& out(Slot s) const { return outputs[static_cast<size_t>(s)]; }
  template <class Slot> bool has(Slot s) const { return tensor_present(in(s)); }
  // The input's data as T, or null when the optional input is absent.
  template <class T, class Slot> T* in_as(Slot s) const { return has(s) ? in(s).template as<T>() : nullptr; }
  template <class T, class Slot> T* out_as(Slot s) const { return out(s).template as<T>(); }
};

}  // namespace longvq
