// cuda_run and cuda_prepare: the op list → the launcher of each op's file; the backend's options.
#include <cstdlib>
#include <cstring>
#include <limits>

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

size_t cuda_prepare(const OpCall& c, const CudaContext& ctx) {
  switch (c.op) {
    case OpKind::ema: return cuda::ema_prepare(c, ctx);
    case OpKind::vq_attention: return cuda::vq_attention_prepare(c, ctx);
    default: return 0;
  }
}

namespace {

// A positive decimal length, or -1.
int64_t parse_length(const std::string& s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
  const int64_t v = std::stoll(s);
  return v >= 1 ? v : -1;
}

}  // namespace

CudaOptions cuda_options_from_env() {
  CudaOptions o;
  if (const char* fft = std::getenv("LONGVQ_CUDA_EMA_FFT"); fft && *fft && std::strcmp(fft, "auto") != 0) {
    const std::string v = fft;
    if (v == "always") o.ema_fft_min_length = 1;
    else if (v == "never") o.ema_fft_min_length = std::numeric_limits<int64_t>::max();
    else if (const int64_t n = parse_length(v); n > 0) o.ema_fft_min_length = n;
    else
      throw std::invalid_argument("LONGVQ_CUDA_EMA_FFT must be auto, always, never or the shortest sequence length "
                                  "that uses the FFT form, not '" + v + "'");
  }
  if (const char* lin = std::getenv("LONGVQ_CUDA_LINEAR"); lin && *lin) {
    const std::string v = lin;
    if (v == "fixed") o.linear_fixed_order = true;
    else if (v != "cublas")
      throw std::invalid_argument("LONGVQ_CUDA_LINEAR must be cublas or fixed, not '" + v + "'");
  }
  return o;
}

std::string cuda_unsupported_reason(const OpCall& c) {
  for (const TensorRef& t : c.inputs) {  // bf16_weights() and q8_weights() are false: models widen at load
    if (t.dtype == DType::bf16) return "the CUDA kernels take f32 weights, not bf16";
    if (t.dtype == DType::q8) return "the CUDA kernels take f32 weights, not q8_0";
  }
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
