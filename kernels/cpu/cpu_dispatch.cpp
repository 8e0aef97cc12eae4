#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/cpu_common.h"

namespace longvq {
namespace {

CpuIsa best_supported() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // The AVX-512 bodies are compiled for F + VL + BW + DQ (Skylake-SP and later, Zen 4).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    return CpuIsa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::avx2;
#endif
  return CpuIsa::generic;  // and always elsewhere (aarch64): the portable kernels, vectorized for NEON
}

CpuIsa initial_isa() {
  CpuIsa isa = best_supported();
  if (const char* env = std::getenv("LONGVQ_CPU_ISA")) {
    CpuIsa want = isa;
    if (!std::strcmp(env, "generic")) want = CpuIsa::generic;
    else if (!std::strcmp(env, "avx2")) want = CpuIsa::avx2;
    else if (!std::strcmp(env, "avx512")) want = CpuIsa::avx512;
    isa = std::min(want, isa);
  }
  return isa;
}

CpuIsa& current_isa() {
  static CpuIsa isa = initial_isa();
  return isa;
}

}  // namespace

CpuIsa cpu_isa() { return current_isa(); }

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::generic: return "generic";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
  }
  return "?";
}

CpuIsa cpu_force_isa(CpuIsa isa) {
  current_isa() = std::min(isa, best_supported());
  return current_isa();
}

void cpu_run(const OpCall& c, const CpuContext& ctx) {
  switch (c.op) {
    case OpKind::embed_tokens: return cpu::embed_tokens(c, ctx);
    case OpKind::embed_real: return cpu::embed_real(c, ctx);
    case OpKind::norm: return cpu::norm(c, ctx);
    case OpKind::linear: return cpu::linear(c, ctx);
    case OpKind::ema: return cpu::ema(c, ctx);
    case OpKind::mix_gates: return cpu::mix_gates(c, ctx);
    case OpKind::vq_codes: return cpu::vq_codes(c, ctx);
    case OpKind::vq_attention: return cpu::vq_attention(c, ctx);
    case OpKind::mul: return cpu::mul(c, ctx);
    case OpKind::add: return cpu::add(c, ctx);
    case OpKind::gated_residual: return cpu::gated_residual(c, ctx);
    case OpKind::mean_pool: return cpu::mean_pool(c, ctx);
    case OpKind::count_: break;
  }
  throw std::invalid_argument("cpu_run: unknown op");
}

}  // namespace longvq
