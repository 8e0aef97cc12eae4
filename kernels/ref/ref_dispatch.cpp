#include <stdexcept>

#include "kernels/ref/ref_ops.h"

namespace longvq {

void ref_run(const OpCall& c) {
  switch (c.op) {
    case OpKind::embed_tokens: return ref::embed_tokens(c);
    case OpKind::embed_real: return ref::embed_real(c);
    case OpKind::norm: return ref::norm(c);
    case OpKind::linear: return ref::linear(c);
    case OpKind::ema: return ref::ema(c);
    case OpKind::mix_gates: return ref::mix_gates(c);
    case OpKind::vq_codes: return ref::vq_codes(c);
    case OpKind::vq_attention: return ref::vq_attention(c);
    case OpKind::mul: return ref::mul(c);
    case OpKind::add: return ref::add(c);
    case OpKind::gated_residual: return ref::gated_residual(c);
    case OpKind::mean_pool: return ref::mean_pool(c);
    case OpKind::count_: break;
  }
  throw std::invalid_argument("ref_run: unknown op");
}

}  // namespace longvq
