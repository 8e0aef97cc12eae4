#include "engine/ops/op.h"

#include <cstring>
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

std::vector<int64_t> linear_panels_shape(int64_t out, int64_t in) {
  return {(out + kLinearPanel - 1) / kLinearPanel, in, kLinearPanel};
}

namespace {

// Element by element as T (a fixed-size memcpy is one move, and W may be unaligned in an mmap).
template <class T>
void pack_panels_as(const unsigned char* src, T* panels, int64_t out, int64_t in) {
  const int64_t count = linear_panels_shape(out, in)[0];
  for (int64_t p = 0; p < count; ++p)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j < kLinearPanel; ++j) {
        const int64_t o = p * kLinearPanel + j;
        T v{};
        if (o < out) std::memcpy(&v, src + (o * in + k) * sizeof(T), sizeof(T));
        panels[(p * in + k) * kLinearPanel + j] = v;
      }
}

}  // namespace

void pack_linear_panels(const TensorRef& W, void* dst) {
  const int64_t out = W.shape.at(0), in = W.shape.at(1);
  const auto* src = static_cast<const unsigned char*>(W.data);
  if (dtype_size(W.dtype) == 2) return pack_panels_as(src, static_cast<uint16_t*>(dst), out, in);
  pack_panels_as(src, static_cast<uint32_t*>(dst), out, in);
}

bool op_allows_in_place(OpKind op, int in) {
  switch (op) {
    case OpKind::mul:
    case OpKind::add: return in == 0 || in == 1;
    case OpKind::gated_residual: return in == 0;  // y[i] reads res[i], u[i], hx[i], hp[i] only
    default: return false;
  }
}

}  // namespace longvq
