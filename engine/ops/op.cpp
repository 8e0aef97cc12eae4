#include "engine/ops/op.h"

#include <cstdio>
#include <stdexcept>

namespace longvq {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::bf16: return 2;
    case DType::q8: return 1;  // per value; TensorRef::nbytes() adds the scales
  }
  throw std::logic_error("unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::bf16: return "bf16";
    case DType::q8: return "q8_0";
  }
  return "?";
}

namespace {

constexpr uint32_t bit(auto slot) { return 1u << static_cast<unsigned>(slot); }
constexpr uint32_t kCausalState = kParamBidirectional | kParamStateful | kParamHasLengths;

// In OpKind order (checked below).
constexpr OpDesc kOps[] = {
    {OpKind::embed_tokens, "embed_tokens", EmbedTokensInNames, OutEmbedNames, kParamScale, 0, 0},
    {OpKind::embed_real, "embed_real", EmbedRealInNames, OutEmbedNames, 0, 0, 0},
    {OpKind::norm, "norm", NormInNames, OutYNames, kParamNorm | kParamAffine | kParamEps, 0, 0},
    {OpKind::linear, "linear", LinearInNames, OutYNames, kParamActivation, 0, bit(LinearIn::W)},
    {OpKind::ema, "ema", EmaInNames, OutYNames, kCausalState, 0, 0},
    {OpKind::mix_gates, "mix_gates", MixGatesInNames, MixGatesOutNames, 0, 0, 0},
    {OpKind::vq_codes, "vq_codes", VqCodesInNames, VqCodesOutNames, 0, 0, 0},
    {OpKind::vq_attention, "vq_attention", VqAttentionInNames, VqAttentionOutNames,
     kCausalState | kParamWindow | kParamQuantizeWindowKeys, 0, 0},
    {OpKind::mul, "mul", BinaryInNames, OutYNames, 0, bit(BinaryIn::a) | bit(BinaryIn::b), 0},
    // y[i] reads res[i], u[i], hx[i], hp[i] only: it may overwrite res.
    {OpKind::gated_residual, "gated_residual", GatedResidualInNames, OutYNames, 0, bit(GatedResidualIn::res), 0},
    {OpKind::add, "add", BinaryInNames, OutYNames, 0, bit(BinaryIn::a) | bit(BinaryIn::b), 0},
    {OpKind::mean_pool, "mean_pool", MeanPoolInNames, MeanPoolOutNames, 0, 0, 0},
};
static_assert(sizeof(kOps) / sizeof(kOps[0]) == static_cast<size_t>(OpKind::count_));

constexpr bool in_order() {
  for (size_t i = 0; i < sizeof(kOps) / sizeof(kOps[0]); ++i)
    if (static_cast<size_t>(kOps[i].kind) != i) return false;
  return true;
}

}  // namespace

const OpDesc& op_desc(OpKind op) {
  static_assert(in_order(), "kOps must list the ops in OpKind order");
  if (static_cast<size_t>(op) >= static_cast<size_t>(OpKind::count_)) throw std::invalid_argument("unknown op kind");
  return kOps[static_cast<size_t>(op)];
}

std::string describe_op(OpKind op, const OpParams& params) {
  std::string s = std::string(op_name(op)) + "(";
  bool first = true;
  params.visit(op_desc(op).params, [&](const char* name, double value) {
    char v[32];
    std::snprintf(v, sizeof v, "%g", value);
    s += (first ? "" : ", ") + std::string(name) + "=" + v;
    first = false;
  });
  return s + ")";
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorRef::rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
int64_t TensorRef::cols() const { return shape.empty() ? 1 : shape.back(); }

bool tensor_present(const TensorRef& t) { return t.data != nullptr || (!t.shape.empty() && t.numel() == 0); }

}  // namespace longvq
