// cuda_run: the op list → the launcher of each op's file.
#include "kernels/cuda/cuda_common.cuh"

namespace longvq {

void cuda_run(const OpCall& c, const CudaContext& ctx) {
  switch (c.op) {
    case OpKind::embed_tokens: return cuda::embed_tokens(c, ctx);
    case OpKind::embed_real: return cuda::embed_real(c, ctx);
    case OpKind::norm: return cuda::norm(c, ctx);
    case OpKind::linear: return cuda::linear(c, ctx);
    case OpKind::ema: return cuda::ema(c, ctx);
    case OpKind::mix_gates: return cuda::mix_gates(c, ctx);
    case OpKind::vq_codes: return cuda::vq_codes(c, ctx);
    case OpKind::vq_attention: return cuda::vq_attention(c, ctx);
    case OpKind::mul: return cuda::mul(c, ctx);
    case OpKind::add: return cuda::add(c, ctx);
    case OpKind::gated_residual: return cuda::gated_residual(c, ctx);
    case OpKind::mean_pool: return cuda::mean_pool(c, ctx);
    case OpKind::count_: break;
  }
  throw std::invalid_argument("cuda_run: unknown op");
}

size_t cuda_scratch_bytes(const OpCall& c) {
  return c.op == OpKind::vq_attention ? cuda::vq_attention_scratch_bytes(c) : 0;
}

std::string cuda_unsupported_reason(const OpCall& c) {
  for (const TensorRef& t : c.inputs)  // Backend::bf16_weights() is false: models widen them at load
    if (t.dtype == DType::bf16) return "the CUDA kernels take f32 weights, not bf16";
  return c.op == OpKind::vq_attention ? cuda::vq_attention_unsupported_reason(c) : "";
}

std::string cuda_error_flags_message(uint32_t flags) {
  std::string m;
  auto add = [&](uint32_t bit, const char* what) {
    if (flags & bit) m += (m.empty() ? "" : "; ") + std::string(what);
  };
  add(kCudaErrTokenRange, "a token id is outside the model's vocabulary");
  add(kCudaErrCodeRange, "a key code is outside the codebook");
  add(kCudaErrRingCode, "the state's window ring holds a code outside the codebook (corrupt state)");
  add(kCudaErrPosition, "the state holds a negative position (corrupt state)");
  return m;
}

}  // namespace longvq
