// q8_0 weight matrices (DType::q8: int8 values, an f16-valued scale per block of 32 inputs, the
// layout of engine/ops/op.h): linear and embed_tokens against the reference, and the promise the
// CPU kernels make: bit for bit the result the same kernels give on the dequantized f32 matrix,
// on every instruction set this machine has and the portable path, dense or prepared W, GEMV ==
// GEMM, any thread count. CUDA refuses q8 (models dequantize at load).
#include <catch2/catch.hpp>

#include "tests/f16.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_ops.h"
#include "tests/ops/op_cases.h"
#include "tests/ops/op_harness.h"

namespace longvq::optest {
namespace {

// A random q8 matrix [R, C]: int8 values in [−127, 127], scales f16 values (as the files hold)
// around `scale`, some blocks with scale 0 (an all-zero block of a file).
Buffer q8(Rng& r, int64_t R, int64_t C, float scale) {
  Buffer b(DType::q8, {R, C}, q8_bytes(R, C), 0);
  std::memset(b.data(), 0, b.bytes());
  TensorRef t = b.ref();
  auto* q = const_cast<int8_t*>(t.q8_values());
  auto* s = const_cast<float*>(t.q8_scales());
  for (int64_t i = 0; i < R * C; ++i) q[i] = static_cast<int8_t>(r.randint(-127, 127));
  for (int64_t i = 0; i < R * q8_blocks(C); ++i)
    s[i] = r.randint(0, 15) == 0 ? 0.0f : longvq_test::round_to_f16(r.uni(0.2f, 1.0f) * scale);
  return b;
}

// Its f32 values: float(q) · scale (exact).
Buffer dequantized(const Buffer& b) {
  const TensorRef t = b.ref();
  const int64_t R = t.shape[0], C = t.shape[1], nb = q8_blocks(C);
  Buffer f(DType::f32, {R, C});
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c)
      f.as<float>()[r * C + c] = q8_value(t.q8_values()[r * C + c], t.q8_scales()[r * nb + c / kQ8Block]);
  return f;
}

std::vector<Case> linear_q8_cases() {
  std::vector<Case> cs = linear_cases();
  Rng r(80);
  // K past two blocks of 256 (the GEMM's K blocks continue partial sums through y), odd tails.
  for (auto [T, K, N] : {std::tuple<int64_t, int64_t, int64_t>{9, 600, 40}, {40, 1100, 33}, {1, 1100, 129}}) {
    Case c;
    c.op = OpKind::linear;
    c.params.activation = Activation::silu;
    c.name = "linear x=[" + std::to_string(T) + ", " + std::to_string(K) + "] N=" + std::to_string(N) + " act=silu bias";
    c.in = {f32(r, {T, K}), f32(r, {N, K}), f32(r, {N})};
    c.out.push_back(out(DType::f32, {T, N}));
    cs.push_back(std::move(c));
  }
  for (Case& c : cs) {
    const int64_t K = c.in[1].shape()[1];
    c.in[1] = q8(r, c.in[1].shape()[0], K, 2.0f / std::sqrt(static_cast<float>(K)) / 127.0f);
    c.name += " W=q8_0";
  }
  return cs;
}

std::vector<Case> embed_q8_cases() {
  std::vector<Case> cs = embed_cases();
  Rng r(81);
  for (Case& c : cs) {
    c.in[1] = q8(r, c.in[1].shape()[0], c.in[1].shape()[1], 1.0f / 127.0f);
    c.name += " table=q8_0";
  }
  return cs;
}

}  // namespace

TEST_CASE("linear, embed_tokens: q8_0 weights, backend == ref (CUDA refuses them: models dequantize at load)",
          "[linear][embed_tokens][q8]") {
  std::vector<Case> cases = linear_q8_cases();
  for (Case& c : embed_q8_cases()) cases.push_back(std::move(c));
  if (testing_cuda()) {
    for (const Case& c : cases) CHECK(!cuda_backend().unsupported_reason(c.call()).empty());
    return;
  }
  run_all(cases, 1e-5);
  std::vector<Case> prepared = linear_q8_cases();
  for (Case& c : prepared) c.prepared[static_cast<size_t>(LinearIn::W)] = prepared_linear(c.in[1]);
  run_all(prepared, 1e-5);
}

// The definition of q8's exactness: the CPU's result on the q8 matrix == its result on the f32
// dequantized matrix, bit for bit, per instruction set (generic: multiply then add, as the f32
// portable path), for 1 and 2 threads, with W dense (packed by the kernel) or prepared at load.
TEST_CASE("linear, embed_tokens: q8_0 weights give bit for bit the f32 result of the dequantized weights",
          "[linear][embed_tokens][q8]") {
  if (testing_cuda()) return;  // CPU kernels only
  std::vector<Case> cases = linear_q8_cases();
  for (Case& c : embed_q8_cases()) cases.push_back(std::move(c));
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  int compared = 0;
  for (const Case& c : cases)
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      for (int threads : {1, 2})
        for (bool prepare : {false, true}) {
          if (prepare && c.op != OpKind::linear) continue;
          Case quant = c, full = c;
          full.in[1] = dequantized(c.in[1]);
          if (prepare) {
            quant.prepared[1] = prepared_linear(quant.in[1]);
            full.prepared[1] = prepared_linear(full.in[1]);
          }
          cpu_run(quant.call(prepare), CpuContext{threads, 0.0});
          cpu_run(full.call(prepare), CpuContext{threads, 0.0});
          const std::string err = compare(full, quant, -1);
          if (!err.empty())
            FAIL_CHECK(c.name << " cpu[" << cpu_isa_name(isa) << "] " << threads << " threads"
                              << (prepare ? " prepared" : "") << ": " << err);
          ++compared;
        }
    }
  cpu_force_isa(best);
  INFO(compared << " comparisons");
  CHECK(compared > 0);
}

// One chain per output: each row computed alone (GEMV, decode) == all rows at once (GEMM).
TEST_CASE("linear: q8_0 GEMV == GEMM, bit for bit", "[linear][q8]") {
  if (testing_cuda()) return;
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (const Case& c : linear_q8_cases())
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      Case all = c;
      all.prepared[1] = prepared_linear(c.in[1]);
      cpu_run(all.call(true), CpuContext{2, 0.0});
      const int64_t T = c.in[0].numel() / c.in[0].shape().back(), K = c.in[0].shape().back();
      const int64_t N = c.in[1].shape()[0];
      for (int64_t t = 0; t < T; ++t) {
        Case row = c;
        row.in[0] = Buffer(DType::f32, {1, K});
        std::memcpy(row.in[0].data(), c.in[0].as<float>() + t * K, static_cast<size_t>(K) * 4);
        row.out[0] = out(DType::f32, {1, N});
        cpu_run(row.call(), CpuContext{1});
        if (std::memcmp(row.out[0].data(), all.out[0].as<float>() + t * N, static_cast<size_t>(N) * 4) != 0) {
          FAIL_CHECK(c.name << " cpu[" << cpu_isa_name(isa) << "]: row " << t << " alone differs from the GEMM");
          break;
        }
      }
    }
  cpu_force_isa(best);
}

TEST_CASE("q8_0 layout: bytes and panel size", "[q8]") {
  CHECK(q8_blocks(1) == 1);
  CHECK(q8_blocks(32) == 1);
  CHECK(q8_blocks(33) == 2);
  CHECK(q8_bytes(3, 33) == 128 + 3 * 2 * 4);  // 99 values rounded up to 128, then 6 f32 scales
  CHECK(TensorRef{nullptr, DType::q8, {3, 33}}.nbytes() == q8_bytes(3, 33));
  CHECK(std::string(dtype_name(DType::q8)) == "q8_0");
  // 17 outputs → 2 panels; 33 inputs → 2 blocks of 64 + 512 bytes
  CHECK(cpu_linear_panel_bytes(17, 33, DType::q8) == 2 * 2 * 576);
}

}  // namespace longvq::optest

TEST_CASE("q8: the tests' f16 rounding is numpy's (nearest, ties to even, subnormals)", "[q8]") {
  // numpy: hex(np.float16(np.float32(v)).view(np.uint16))
  const std::pair<float, uint16_t> cases[] = {
      {1.0f, 0x3c00},     {65504.0f, 0x7bff}, {5.960464477539063e-08f, 0x0001}, {0.1f, 0x2e66},
      {1.0f / 3, 0x3555}, {3e-5f, 0x01f7},    {6.1e-5f, 0x03ff},                {0.00787f, 0x2008},
      {1000.5f, 0x63d1},  {2049.0f, 0x6800},  {2051.0f, 0x6802},                {-0.5f, 0xb800}};
  for (const auto& [v, bits] : cases) {
    INFO(v);
    CHECK(longvq_test::f32_to_f16_bits(v) == bits);
    CHECK(longvq_test::f32_to_f16_bits(longvq_test::f16_bits_to_f32(bits)) == bits);
  }
}
