#include "engine/op.h"

#include <stdexcept>

namespace longvq {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::bf16: return 2;
  }
  throw std::logic_error("unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::bf16: return "bf16";
  }
  return "?";
}

const char* op_name(OpKind op) {
  static const char* names[] = {"embed_tokens", "embed_real", "norm",           "linear",
                                "ema",          "mix_gates",  "vq_codes",       "vq_attention",
                                "mul",          "gated_residual", "add",        "mean_pool"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(OpKind::count_));
  return names[static_cast<size_t>(op)];
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorRef::rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
int64_t TensorRef::cols() const { return shape.empty() ? 1 : shape.back(); }

bool op_allows_in_place(OpKind op, int in) {
  switch (op) {
    case OpKind::mul:
    case OpKind::add: return in == 0 || in == 1;
    case OpKind::gated_residual: return in == 0;  // y[i] reads res[i], u[i], hx[i], hp[i] only
    default: return false;
  }
}

}  // namespace longvq
