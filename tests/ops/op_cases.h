// Case generators of the op tests: random cases over odd sizes and every parameter combination,
// per op (op_harness.h runs them). Shared by test_ops*.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "tests/ops/op_harness.h"

namespace longvq::optest {

// Row-wise ops accept any leading shape; variant picks [T, c], [1, T, c] or [T, 1, c].
std::vector<int64_t> seq_shape(int64_t T, int64_t cols, int variant);

std::vector<Case> embed_cases();       // embed_tokens, f32 and bf16 tables
std::vector<Case> embed_real_cases();
std::vector<Case> norm_cases();        // every kind × affine
// linear: GEMV and GEMM sizes, every activation, with and without bias.
std::vector<Case> linear_cases();
std::vector<Case> linear_bf16_cases();  // the same sizes with bf16 weight matrices
// W as the CPU device prepares it at load (Device::prepare_weight: its private panel layout).
Buffer prepared_linear(const Buffer& W);
std::vector<Case> linear_prepared_cases();  // every f32 and bf16 case with W prepared

// EMA coefficients as the engine derives them at load: q = 1 − σ(δ)σ(α), pb = σ(δ)β, g = γ/sqrt(N).
void ema_coefficients(Rng& r, int64_t Dp, int64_t N, Buffer& q, Buffer& pb, Buffer& g);
// Lengths for B right-padded rows of n: a length-1 row, a full row, an empty row, then random.
std::vector<int32_t> some_lengths(Rng& r, int64_t B, int64_t n);
Case make_ema(Rng& r, int64_t B, int64_t n, int64_t d, int64_t N, bool bidir, bool lengths, bool stateful);
std::vector<Case> ema_cases();  // every mode on small odd sizes

std::vector<Case> mix_gates_cases();
std::vector<Case> vq_codes_cases();  // the last one: ties

struct AttnSpec {
  int64_t B, n, e, h, S;
  int W;
  bool qwk, bidir, lengths, stateful;
  std::vector<int64_t> pos;  // stateful
};

// A vq_attention case of that spec (stateful: a state as decoding to s.pos would leave it).
Case make_attention(Rng& r, const AttnSpec& s);
// B positions mixing pos < W and pos ≥ W (rows 0 and 1 one of each when B ≥ 2).
std::vector<int64_t> mixed_positions(Rng& r, int64_t B, int64_t W);
std::vector<Case> attention_cases();
std::vector<Case> elementwise_cases();  // mul, add, gated_residual, in place too
std::vector<Case> mean_pool_cases();

}  // namespace longvq::optest
