// The op tests, in the manner of ggml's test-backend-ops: for every op, random cases over odd
// sizes and every parameter combination run the reference kernel (kernels/ref) and the backend
// under test (--backend cpu: every instruction set this machine has, 1 and 2 threads;
// --backend cuda: the CUDA kernels, through device copies of every tensor) on identical inputs
// and compare them (tests/ops/op_harness.h says what every run must pass).
// Plus the stateful invariants (split chunk == whole == single steps; from an empty state ==
// stateless causal). Filter one op with its tag: test_ops "[ema]". Beside it, in the same binary:
// the case generators (op_cases.cpp), check_op_call's refusals (test_op_check.cpp), the CUDA
// kernels' own paths (test_ops_cuda.cpp: the EMA's FFT form, the linear reduction order) and the
// hidden CPU benchmarks (test_ops_perf.cpp, test_ops "[.perf]").
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/backend_cpu.h"
#include "engine/ops/op.h"
#include "engine/ops/op_check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/ref/ref_ops.h"
#include "tests/ops/op_cases.h"
#include "tests/ops/op_harness.h"

using namespace longvq;
using namespace longvq::optest;

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers for the stateful invariants
// ---------------------------------------------------------------------------------------------
// Positions [t0, t1) of the sequence axis (axis 1) of a [B, n, ...] tensor.
Buffer slice_seq(const Buffer& b, int64_t t0, int64_t t1) {
  std::vector<int64_t> shape = b.shape();
  const int64_t n = shape[1];
  shape[1] = t1 - t0;
  Buffer s(b.dtype(), shape);
  const size_t row = b.bytes() / static_cast<size_t>(shape[0] * n);
  for (int64_t i = 0; i < shape[0]; ++i)
    std::memcpy(static_cast<char*>(s.data()) + i * (t1 - t0) * row, static_cast<char*>(b.data()) + (i * n + t0) * row,
                (t1 - t0) * row);
  return s;
}

// Writes `part` into positions [t0, t0 + part.n) of `whole`.
void paste_seq(Buffer& whole, const Buffer& part, int64_t t0) {
  const int64_t n = whole.shape()[1], m = part.shape()[1];
  const size_t row = whole.bytes() / static_cast<size_t>(whole.shape()[0] * n);
  for (int64_t i = 0; i < whole.shape()[0]; ++i)
    std::memcpy(static_cast<char*>(whole.data()) + (i * n + t0) * row, static_cast<char*>(part.data()) + i * m * row,
                m * row);
}

// The case for positions [t0, t1) of `whole`, continuing from the state inputs of `from`.
Case sub_chunk(const Case& whole, const Case& from, int64_t t0, int64_t t1) {
  Case c;
  c.op = whole.op;
  c.params = whole.params;
  c.name = whole.name + " chunk [" + std::to_string(t0) + ", " + std::to_string(t1) + ")";
  c.in = whole.in;
  for (size_t i = 0; i < c.in.size(); ++i) {
    if (is_state_input(c.op, i)) c.in[i] = from.in[i];
    const bool seq = (c.op == OpKind::vq_attention && i <= 3) || (c.op == OpKind::ema && i == 0);
    if (seq) c.in[i] = slice_seq(whole.in[i], t0, t1);
  }
  if (c.op == OpKind::vq_attention)
    for (int64_t b = 0; b < c.in[12].numel(); ++b) c.in[12].as<int64_t>()[b] += t0;  // pos advanced by the engine
  c.out.clear();
  auto oshape = whole.out[0].shape();
  oshape[1] = t1 - t0;
  c.out.push_back(out(DType::f32, oshape));
  return c;
}

// Runs `whole` in the pieces [cuts[i], cuts[i+1]) with `kernel`; returns the stitched case.
Case run_in_pieces(const Case& whole, const std::vector<int64_t>& cuts, const Kernel& kernel) {
  Case state = whole;  // carries the state inputs from piece to piece
  Case stitched = whole;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    Case piece = sub_chunk(whole, state, cuts[i], cuts[i + 1]);
    kernel(piece.call());
    for (size_t k = 0; k < piece.in.size(); ++k)
      if (is_state_input(whole.op, k)) state.in[k] = piece.in[k];
    paste_seq(stitched.out[0], piece.out[0], cuts[i]);
  }
  for (size_t k = 0; k < whole.in.size(); ++k)
    if (is_state_input(whole.op, k)) stitched.in[k] = state.in[k];
  return stitched;
}

// For kernel: whole == split in two (outputs within out_tol, -1 = bitwise; states exact) and
// == single steps.
void check_split_invariance(const Case& whole_case, const Kernel& kernel, const std::string& kname, double out_tol,
                            double state_tol) {
  const int64_t n = whole_case.in[0].shape()[1];
  Case whole = whole_case;
  kernel(whole.call());
  std::vector<std::vector<int64_t>> splits = {{0, n / 3, n}, {0, 1, n}, {0, n - 1, n}};
  std::vector<int64_t> steps;
  for (int64_t t = 0; t <= n; ++t) steps.push_back(t);
  splits.push_back(steps);
  for (const auto& cuts : splits) {
    Case pieces = run_in_pieces(whole_case, cuts, kernel);
    // Compare outputs and states separately (different tolerances).
    std::string err;
    {
      Case a = whole, b = pieces;
      for (size_t k = 0; k < a.in.size(); ++k)
        if (is_state_input(a.op, k)) a.in[k] = b.in[k] = Buffer();
      err = compare(a, b, out_tol);
    }
    if (err.empty()) {
      Case a = whole, b = pieces;
      a.out[0] = b.out[0];
      err = compare(a, b, state_tol);
    }
    if (!err.empty())
      FAIL_CHECK(kname << " " << whole_case.name << " split at " << shape_str(cuts) << " != whole: " << err);
  }
}

}  // namespace

// =============================================================================================
// Per-op comparisons: reference vs CPU
// =============================================================================================
TEST_CASE("embed_tokens: backend == ref", "[embed_tokens]") { run_all(embed_cases(), 1e-6); }
TEST_CASE("embed_tokens: an id outside the vocabulary is refused, also with a table of width 0", "[embed_tokens]") {
  for (int64_t d : {0, 3}) {
    INFO("d = " << d);
    Case c;
    c.op = OpKind::embed_tokens;
    c.in = {i32({1, 3}, {0, 5, 1}), f32_fill({5, d}, 1.0f)};  // id 5 of a vocabulary of 5
    c.out.push_back(out(DType::f32, {1, 3, d}));
    CHECK_THROWS_AS(kRef(c.call()), std::out_of_range);
    CHECK_THROWS_AS(under_test()(c.call()), std::out_of_range);
    c.in[0] = i32({1, 3}, {0, 4, 1});
    CHECK_NOTHROW(under_test()(c.call()));
  }
}
TEST_CASE("embed_real: backend == ref", "[embed_real]") { run_all(embed_real_cases(), 1e-6); }
TEST_CASE("norm: backend == ref, every kind x affine", "[norm]") { run_all(norm_cases(), 1e-5); }
TEST_CASE("linear: backend == ref, GEMV and GEMM, every activation", "[linear]") { run_all(linear_cases(), 1e-5); }
TEST_CASE("linear: bf16 weights, backend == ref (CUDA refuses them: models widen at load)", "[linear]") {
  if (!testing_cuda()) return run_all(linear_bf16_cases(), 1e-5);
  for (const Case& c : linear_bf16_cases()) CHECK(!cuda_backend().unsupported_reason(c.call()).empty());
}
TEST_CASE("linear: W in the CPU device's prepared layout, backend == ref", "[linear]") {
  if (testing_cuda()) return;  // the CUDA device prepares no layout
  run_all(linear_prepared_cases(), 1e-5);
}
// One chain of FMAs per output whatever the kernel: prepared W == dense W packed by the kernel,
// and each row computed alone (GEMV, decode) == all rows at once (GEMM, prefill), bit for bit.
TEST_CASE("linear: GEMV == GEMM and prepared W == dense W, bit for bit", "[linear]") {
  if (testing_cuda()) return;  // CPU kernels only
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  std::vector<Case> cases = linear_cases();
  for (Case& c : linear_bf16_cases()) cases.push_back(std::move(c));
  for (const Case& c : cases)
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      const std::string where = c.name + " cpu[" + cpu_isa_name(isa) + "]";
      Case given = c, own = c;
      given.prepared[1] = prepared_linear(c.in[1]);
      cpu_run(given.call(true), CpuContext{2, 0.0});
      cpu_run(own.call(), CpuContext{1});
      if (const std::string err = compare(given, own, -1); !err.empty()) FAIL_CHECK(where << ": " << err);
      const int64_t T = c.in[0].numel() / c.in[0].shape().back(), K = c.in[0].shape().back();
      const int64_t N = c.in[1].shape()[0];
      for (int64_t t = 0; t < T; ++t) {
        Case row = c;
        row.in[0] = Buffer(DType::f32, {1, K});
        std::memcpy(row.in[0].data(), c.in[0].as<float>() + t * K, static_cast<size_t>(K) * 4);
        row.out[0] = out(DType::f32, {1, N});
        cpu_run(row.call(), CpuContext{1});
        if (std::memcmp(row.out[0].data(), given.out[0].as<float>() + t * N, static_cast<size_t>(N) * 4) != 0) {
          FAIL_CHECK(where << ": row " << t << " alone differs from the GEMM");
          break;
        }
      }
    }
  cpu_force_isa(best);
}
TEST_CASE("linear, embed_tokens: bf16 weights give bit for bit the result of their f32 widening", "[linear][embed_tokens]") {
  if (testing_cuda()) return;  // CPU kernels only
  std::vector<Case> cases = linear_bf16_cases();
  for (Case& c : embed_cases())
    if (c.in[1].dtype() == DType::bf16) cases.push_back(std::move(c));
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (const Case& c : cases)
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      for (int threads : {1, 2}) {
        Case half = c, full = c;
        full.in[1] = widened(c.in[1]);
        cpu_run(half.call(), CpuContext{threads, 0.0});
        cpu_run(full.call(), CpuContext{threads, 0.0});
        const std::string err = compare(full, half, -1);
        if (!err.empty()) FAIL_CHECK(c.name << " cpu[" << cpu_isa_name(isa) << "] " << threads << " threads: " << err);
      }
    }
  cpu_force_isa(best);
}
TEST_CASE("ema: backend == ref, causal/bidirectional, lengths, state", "[ema]") { run_all(ema_cases(), 2e-5); }
TEST_CASE("mix_gates: backend == ref", "[mix_gates]") { run_all(mix_gates_cases(), 1e-6); }
TEST_CASE("vq_codes: backend == ref exactly", "[vq_codes]") { run_all(vq_codes_cases(), 0.0); }
TEST_CASE("vq_attention: backend == ref, every mode", "[vq_attention]") { run_all(attention_cases(), 1e-5); }
// A large codebook and window: 56 KiB of shared memory per block on CUDA (bidirectional), more
// than the 48 KiB a kernel gets without opting in to the device's maximum.
TEST_CASE("vq_attention: S = 4096, W = 1024, bidirectional and causal, backend == ref", "[vq_attention]") {
  Rng r(17);
  std::vector<Case> cs;
  for (bool bidir : {true, false}) cs.push_back(make_attention(r, {1, 1100, 4, 4, 4096, 1024, true, bidir, false, false, {}}));
  if (testing_cuda())
    for (const Case& c : cs) CHECK(cuda_backend().unsupported_reason(c.call()).empty());
  run_all(cs, 1e-5);
  if (testing_cuda()) {  // a codebook no GPU has the shared memory for is refused, and says why
    const Case huge = make_attention(r, {1, 3, 2, 2, 1 << 16, 4, true, true, false, false, {}});
    CHECK_THAT(cuda_backend().unsupported_reason(huge.call()), Catch::Contains("this GPU allows"));
  }
}
TEST_CASE("mul, add, gated_residual: backend == ref, in place too", "[mul][add][gated_residual]") {
  run_all(elementwise_cases(), 1e-6);
}
TEST_CASE("mean_pool: backend == ref", "[mean_pool]") { run_all(mean_pool_cases(), 1e-6); }

// =============================================================================================
// Semantics pinned down independently of the CPU kernels
// =============================================================================================
TEST_CASE("vq_codes: ties go to the lowest code", "[vq_codes]") {
  const float C[] = {1, 0, 0, 1, 1, 0};  // codeword 2 duplicates codeword 0
  const float k1[] = {0.5f, 0.5f};        // equidistant from 0 and 1
  const float k2[] = {1, 0};              // on codewords 0 and 2
  const float k3[] = {0, 1};
  CHECK(ref_vq_code(k1, C, 3, 2) == 0);
  CHECK(ref_vq_code(k2, C, 3, 2) == 0);
  CHECK(ref_vq_code(k3, C, 3, 2) == 1);
  const std::vector<Case> cs = vq_codes_cases();
  Case ties = cs.back();
  under_test()(ties.call());
  // (.5,.5) → 0 (ties with 1, 2, 5); (1,0) → 0, not its duplicate 2; (0,1) → 1, not 5;
  // (−.5,−.5) → 3 (ties with 4); (0,0) → 0 (all tie); (3,0) → 0, not 2
  const std::vector<int32_t> expect = {0, 0, 1, 3, 0, 0};
  const std::vector<int32_t> got(ties.out[0].as<int32_t>(), ties.out[0].as<int32_t>() + 6);
  CHECK(got == expect);
}

TEST_CASE("vq_attention: the reference equals a dense softmax on a hand-checkable case", "[vq_attention]") {
  // B = 1, n = 3, e = 1, h = 1, S = 2, W = 1, causal, quantized window keys.
  Rng r(11);
  AttnSpec s{1, 3, 1, 1, 2, 1, true, false, false, false, {}};
  Case c = make_attention(r, s);
  float* q = c.in[0].as<float>();
  float* v = c.in[2].as<float>();
  int32_t* codes = c.in[3].as<int32_t>();
  float* C = c.in[4].as<float>();
  float* T = c.in[5].as<float>();
  q[0] = 1, q[1] = -1, q[2] = 2;
  v[0] = 1, v[1] = 2, v[2] = 4;
  codes[0] = 0, codes[1] = 1, codes[2] = 0;
  C[0] = 0.5f, C[1] = -1.0f;
  T[0] = 0.25f, T[1] = -0.5f;
  ref_run(c.call());
  // query 2 (q = 2): key 0 non-local (C0, no bias), key 1 local (C1, T[1]), key 2 local (C0, T[0])
  const double s0 = 2 * 0.5, s1 = 2 * -1.0 - 0.5, s2 = 2 * 0.5 + 0.25;
  const double o2 = (std::exp(s0) * 1 + std::exp(s1) * 2 + std::exp(s2) * 4) / (std::exp(s0) + std::exp(s1) + std::exp(s2));
  CHECK(c.out[0].as<float>()[2] == Approx(o2).epsilon(1e-6));
  CHECK(c.out[0].as<float>()[0] == Approx(1.0).epsilon(1e-6));  // query 0 sees only itself
}

// =============================================================================================
// Stateful invariants
// =============================================================================================
TEST_CASE("vq_attention: stateful chunk split in calls == one call == single steps", "[vq_attention]") {
  Rng r(12);
  for (int W : {0, 1, 3, 6, 40})
    for (bool qwk : {true, false})
      for (int64_t S : {1, 7}) {
        AttnSpec s{4, 13, 5, 6, S, W, qwk, false, false, true, {}};
        s.pos = mixed_positions(r, s.B, W);
        const Case c = make_attention(r, s);
        // ref: states exact (same float sums in the same order), outputs to rounding
        check_split_invariance(c, kRef, "ref", 1e-5, -1);
        // cpu: bit for bit, any thread count
        if (testing_cuda()) {  // per-code sums are added in position order however the chunk is split
          check_split_invariance(c, under_test(), "cuda", -1, -1);
        } else {  // cpu: bit for bit, any thread count
          check_split_invariance(c, cpu_kernel(1), "cpu(1)", -1, -1);
          check_split_invariance(c, cpu_kernel(2), "cpu(2)", -1, -1);
        }
        // and the final state equals the reference's
        Case a = c, b = c;
        ref_run(a.call());
        under_test()(b.call());
        a.out[0] = b.out[0];
        const std::string err = compare(a, b, -1);
        if (!err.empty()) FAIL_CHECK(c.name << ": final state " << under_test_name() << " != ref: " << err);
      }
}

TEST_CASE("vq_attention: stateful from an empty state at pos 0 == stateless causal", "[vq_attention]") {
  Rng r(13);
  for (int W : {0, 2, 9})
    for (bool qwk : {true, false}) {
      AttnSpec s{2, 11, 4, 3, 5, W, qwk, false, false, true, {0, 0}};
      Case st = make_attention(r, s);
      std::fill(st.in[7].as<int32_t>(), st.in[7].as<int32_t>() + st.in[7].numel(), -1);
      Case sl = st;  // same q, k, v, codes, C, T; no state
      sl.params.stateful = false;
      for (size_t i = 7; i <= 12; ++i) sl.in[i] = Buffer();
      for (const auto& [kname, kernel] : {std::pair<std::string, Kernel>{"ref", kRef}, {under_test_name(), under_test()}}) {
        Case a = st, b = sl;
        kernel(a.call());
        kernel(b.call());
        const double tol = kname == "ref" ? 1e-6 : -1;  // the fast sweeps take the same path: bitwise
        Case a_out = b;
        a_out.out[0] = a.out[0];
        const std::string err = compare(b, a_out, tol);
        if (!err.empty()) FAIL_CHECK(kname << " " << st.name << ": " << err);
      }
    }
}

TEST_CASE("ema: stateful split == whole == single steps", "[ema]") {
  Rng r(14);
  for (auto [B, n, d, N] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {2, 13, 7, 16}, {3, 9, 33, 2}, {2, 11, 40, 16}}) {
    const Case c = make_ema(r, B, n, d, N, false, false, true);
    check_split_invariance(c, kRef, "ref", 1e-5, 1e-5);
    if (testing_cuda()) {  // the chunked scan splits time differently: equal to rounding
      check_split_invariance(c, under_test(), "cuda", 1e-5, 1e-5);
    } else {
      check_split_invariance(c, cpu_kernel(1), "cpu(1)", -1, -1);
      check_split_invariance(c, cpu_kernel(2), "cpu(2)", -1, -1);
    }
  }
}

// The state inputs of a stateful op that lead with the state's rows: ema's state; vq_attention's
// ring, cache and pos.
std::vector<size_t> row_state_inputs(OpKind op) {
  using A = VqAttentionIn;
  if (op == OpKind::ema) return {static_cast<size_t>(EmaIn::state)};
  return {static_cast<size_t>(A::ring_codes), static_cast<size_t>(A::ring_values), static_cast<size_t>(A::ring_keys),
          static_cast<size_t>(A::cache_u),    static_cast<size_t>(A::cache_n),     static_cast<size_t>(A::pos)};
}

// `c` (B rows, a B-row state) with its state embedded in a state of R rows: batch row b
// continues state row rows[b]; every other row holds a copy of some row of `c`'s state (valid
// values) and must come out untouched.
Case embed_in_rows(const Case& c, const std::vector<int32_t>& rows, int64_t R) {
  Case e = c;
  const int64_t B = static_cast<int64_t>(rows.size());
  for (size_t i : row_state_inputs(c.op)) {
    const Buffer& small = c.in[i];
    if (!small.present()) continue;
    auto shape = small.shape();
    shape[0] = R;
    Buffer big(small.dtype(), shape);
    const size_t row = small.bytes() / static_cast<size_t>(B);
    for (int64_t k = 0; k < R; ++k)  // idle rows: copies of rows of c, cycled in reverse
      std::memcpy(static_cast<char*>(big.data()) + k * row, static_cast<char*>(small.data()) + (B - 1 - k % B) * row, row);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(static_cast<char*>(big.data()) + rows[b] * row, static_cast<char*>(small.data()) + b * row, row);
    e.in[i] = std::move(big);
  }
  const size_t rows_slot = c.op == OpKind::ema ? static_cast<size_t>(EmaIn::state_rows)
                                               : static_cast<size_t>(VqAttentionIn::state_rows);
  e.in[rows_slot] = i32({B}, rows);
  e.name += " in rows " + shape_str(std::vector<int64_t>(rows.begin(), rows.end())) + " of " + std::to_string(R);
  return e;
}

TEST_CASE("stateful ops: state_rows steps chosen rows of a larger state, the others stay untouched", "[ema][vq_attention]") {
  Rng r(15);
  std::vector<Case> cases;
  for (int W : {0, 3})
    for (bool qwk : {true, false}) {
      AttnSpec s{3, 5, 4, 6, 7, W, qwk, false, false, true, {}};
      s.pos = mixed_positions(r, s.B, W);
      cases.push_back(make_attention(r, s));
    }
  cases.push_back(make_ema(r, 3, 4, 17, 4, false, false, true));
  cases.push_back(make_ema(r, 3, 1, 33, 16, false, false, true));  // the decode step
  const std::vector<int32_t> rows = {5, 0, 3};
  const int64_t R = 7;
  for (const Case& c : cases) {
    const Case e = embed_in_rows(c, rows, R);
    const double tol = c.op == OpKind::ema ? 2e-5 : 1e-5;
    if (const std::string err = run_case(e, tol); !err.empty()) FAIL_CHECK(e.name << ": " << err);
    // The rows' outputs and states equal the B-row run bit for bit; idle rows keep their bytes.
    for (const auto& [kname, kernel] : {std::pair<std::string, Kernel>{"ref", kRef}, {under_test_name(), under_test()}}) {
      Case small = c, big = e;
      kernel(small.call());
      kernel(big.call());
      if (std::memcmp(small.out[0].data(), big.out[0].data(), small.out[0].bytes()) != 0)
        FAIL_CHECK(kname << " " << e.name << ": outputs differ from the run in a state of its own rows");
      for (size_t i : row_state_inputs(c.op)) {
        if (!c.in[i].present()) continue;
        const size_t row = c.in[i].bytes() / rows.size();
        const auto* got = static_cast<const char*>(big.in[i].data());
        for (size_t b = 0; b < rows.size(); ++b)
          if (std::memcmp(got + rows[b] * row, static_cast<const char*>(small.in[i].data()) + b * row, row) != 0)
            FAIL_CHECK(kname << " " << e.name << ": input " << i << " row " << rows[b] << " differs from the small run");
        for (int64_t k = 0; k < R; ++k)
          if (std::find(rows.begin(), rows.end(), k) == rows.end() &&
              std::memcmp(got + k * row, static_cast<const char*>(e.in[i].data()) + k * row, row) != 0)
            FAIL_CHECK(kname << " " << e.name << ": idle row " << k << " of input " << i << " was written");
      }
    }
  }
}
