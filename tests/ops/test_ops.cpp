// The op tests, in the manner of ggml's test-backend-ops: for every op, random cases over odd
// sizes and every parameter combination run the reference kernel (kernels/ref) and the backend
// under test (--backend cpu: every instruction set this machine has, 1 and 2 threads;
// --backend cuda: the CUDA kernels, through device copies of every tensor) on identical inputs
// and compare them (tests/ops/op_harness.h says what every run must pass).
// Plus the stateful invariants (split chunk == whole == single steps; from an empty state ==
// stateless causal) and check_op_call's refusals. Filter one op with its tag: test_ops "[ema]".
// Hidden benchmarks: test_ops "[.perf]". The CUDA kernels' own paths (the EMA's FFT form, the
// linear kernels' reduction order) are in test_ops_cuda.cpp.
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
#include "tests/ops/op_harness.h"

using namespace longvq;
using namespace longvq::optest;

namespace {

// ---------------------------------------------------------------------------------------------
// Case generators
// ---------------------------------------------------------------------------------------------
std::vector<Case> embed_cases() {
  std::vector<Case> cs;
  Rng r(1);
  int v = 0;
  for (auto [B, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 33}, {8, 200}})
    for (int64_t V : {1, 5, 65})
      for (int64_t d : {1, 7, 65}) {
        Case c;
        c.name = "embed_tokens B=" + std::to_string(B) + " n=" + std::to_string(n) + " V=" + std::to_string(V) +
                 " d=" + std::to_string(d);
        c.op = OpKind::embed_tokens;
        c.params.scale = (v++ % 2) ? 8.0f : 0.5f;
        c.in.push_back(i32_rand(r, {B, n}, 0, static_cast<int32_t>(V - 1)));
        c.in.push_back(v % 3 == 0 ? bf16(r, {V, d}) : f32(r, {V, d}));  // a tied bf16 table too
        c.name += c.in.back().dtype() == DType::bf16 ? " table=bf16" : "";
        c.out.push_back(out(DType::f32, {B, n, d}));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> embed_real_cases() {
  std::vector<Case> cs;
  Rng r(2);
  for (auto [B, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 33}, {8, 200}})
    for (int64_t d : {1, 3, 65}) {
      Case c;
      c.name = "embed_real B=" + std::to_string(B) + " n=" + std::to_string(n) + " d=" + std::to_string(d);
      c.op = OpKind::embed_real;
      c.in = {f32(r, {B, n}, -2, 2), f32(r, {d}), f32(r, {d})};
      c.out.push_back(out(DType::f32, {B, n, d}));
      cs.push_back(std::move(c));
    }
  return cs;
}

std::vector<Case> norm_cases() {
  std::vector<Case> cs;
  Rng r(3);
  int variant = 0;
  const char* names[] = {"layernorm", "scalenorm", "rmsnorm", "batchnorm"};
  for (NormKind kind : {NormKind::layernorm, NormKind::scalenorm, NormKind::rmsnorm, NormKind::batchnorm})
    for (bool affine : {true, false})
      for (auto [T, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {7, 33}, {2, 65}, {65, 3}, {5, 130}, {300, 65}}) {
        Case c;
        c.op = OpKind::norm;
        c.params.norm = kind;
        c.params.affine = affine;
        c.params.eps = (variant % 2) ? 1e-3f : 1e-5f;
        const auto shape = seq_shape(T, d, variant++);
        c.name = std::string("norm ") + names[static_cast<int>(kind)] + (affine ? " affine" : " plain") +
                 " x=" + shape_str(shape);
        c.in.push_back(f32(r, shape, -3, 3));
        const bool two = kind == NormKind::layernorm || kind == NormKind::batchnorm;
        c.in.push_back(!affine ? Buffer() : kind == NormKind::scalenorm ? f32(r, {1}, 0.5f, 2.0f) : f32(r, {d}, 0.5f, 2.0f));
        c.in.push_back(affine && two ? f32(r, {d}) : Buffer());
        c.in.push_back(kind == NormKind::batchnorm ? f32(r, {d}) : Buffer());
        c.in.push_back(kind == NormKind::batchnorm ? f32(r, {d}, 0.25f, 2.0f) : Buffer());
        c.out.push_back(out(DType::f32, shape));
        cs.push_back(std::move(c));
      }
  return cs;
}

// The same sizes with bf16 weight matrices (a model exported with --bf16).
std::vector<Case> linear_bf16_cases() {
  std::vector<Case> cs = linear_cases();
  Rng r(40);
  for (Case& c : cs) {
    const float w = 2.0f / std::sqrt(static_cast<float>(c.in[1].shape()[1]));
    c.in[1] = bf16(r, c.in[1].shape(), -w, w);
    c.name += " W=bf16";
  }
  return cs;
}

// W as the CPU device prepares it at load (Device::prepare_weight: its private panel layout).
Buffer prepared_linear(const Buffer& W) {
  auto prep = cpu_device().prepare_weight(W.ref(), WeightUse::linear);
  REQUIRE(prep);
  Buffer p(W.dtype(), W.shape(), prep->buffer.bytes(), prep->ref.layout);
  std::memcpy(p.data(), prep->ref.data, prep->buffer.bytes());
  return p;
}

// Every f32 and bf16 case with W in the CPU's prepared layout.
std::vector<Case> linear_prepared_cases() {
  std::vector<Case> cs = linear_cases();
  for (Case& c : linear_bf16_cases()) cs.push_back(std::move(c));
  for (Case& c : cs) {
    c.prepared[static_cast<size_t>(LinearIn::W)] = prepared_linear(c.in[static_cast<size_t>(LinearIn::W)]);
    c.name += " W prepared";
  }
  return cs;
}


std::vector<Case> mix_gates_cases() {
  std::vector<Case> cs;
  Rng r(6);
  int variant = 0;
  struct Size { int64_t T, d, e, h; };
  for (Size s : {Size{1, 1, 1, 1}, {7, 3, 5, 2}, {33, 16, 8, 24}, {3, 65, 7, 33}, {200, 16, 8, 24}}) {
    Case c;
    c.op = OpKind::mix_gates;
    const auto shape = seq_shape(s.T, 2 * s.d + s.e + s.h, variant++);
    c.name = "mix_gates mx=" + shape_str(shape) + " d=" + std::to_string(s.d) + " e=" + std::to_string(s.e) +
             " h=" + std::to_string(s.h);
    c.in = {f32(r, shape, -4, 4), f32(r, {2, s.e}), f32(r, {2, s.e})};
    for (int64_t cols : {s.d, s.e, s.e, s.h, s.d}) {
      auto o = shape;
      o.back() = cols;
      c.out.push_back(out(DType::f32, o));
    }
    cs.push_back(std::move(c));
  }
  return cs;
}

std::vector<Case> vq_codes_cases() {
  std::vector<Case> cs;
  Rng r(7);
  int variant = 0;
  struct Size { int64_t T, e, S; };
  for (Size s : {Size{1, 1, 1}, {7, 3, 5}, {33, 16, 33}, {65, 7, 256}, {3, 64, 65}, {40, 8, 3}}) {
    Case c;
    c.op = OpKind::vq_codes;
    const auto shape = seq_shape(s.T, s.e, variant++);
    c.name = "vq_codes k=" + shape_str(shape) + " S=" + std::to_string(s.S);
    c.in = {f32(r, shape, -2, 2), f32(r, {s.S, s.e})};
    auto o = shape;
    o.pop_back();
    c.out.push_back(out(DType::i32, o));
    cs.push_back(std::move(c));
  }
  // Ties: duplicated codewords, keys exactly on codewords, keys equidistant from two codewords.
  {
    Case c;
    c.op = OpKind::vq_codes;
    c.name = "vq_codes ties";
    Buffer C(DType::f32, {6, 2});
    const float cb[] = {1, 0, 0, 1, 1, 0, -1, 0, 0, -1, 0, 1};  // rows 0 = 2, 1 = 5
    std::copy(cb, cb + 12, C.as<float>());
    Buffer k(DType::f32, {6, 2});
    const float kk[] = {0.5f, 0.5f, 1, 0, 0, 1, -0.5f, -0.5f, 0, 0, 3, 0};
    std::copy(kk, kk + 12, k.as<float>());
    c.in = {std::move(k), std::move(C)};
    c.out.push_back(out(DType::i32, {6}));
    cs.push_back(std::move(c));
  }
  return cs;
}

// A decoding state as n steps would leave it at positions pos: the ring holds positions pos−W ..
// pos−1 that are ≥ 0 (slot = position mod W; empty slots carry code −1 and garbage values), the
// cache some per-code sums of older keys (empty while pos ≤ W).
void add_state(Rng& r, Case& c, int64_t B, int64_t W, int64_t S, int64_t e, int64_t h, bool qwk,
               const std::vector<int64_t>& pos) {
  Buffer rc(DType::i32, {B, W}), rv = f32(r, {B, W, h}), rk = f32(r, {B, W, e}, -2, 2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t slot = 0; slot < W; ++slot) {
      const int64_t p = pos[b], j = p - 1 - (((p - 1 - slot) % W) + W) % W;  // ring_positions
      rc.as<int32_t>()[b * W + slot] = j >= 0 ? static_cast<int32_t>(r.randint(0, S - 1)) : -1;
    }
  Buffer cu = f32_fill({B, S, h}, 0.0f);
  Buffer cn(DType::i32, {B, S});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const int32_t count = pos[b] > W ? static_cast<int32_t>(r.randint(0, 4)) : 0;
      cn.as<int32_t>()[b * S + s] = count;
      for (int64_t j = 0; j < h; ++j) cu.as<float>()[(b * S + s) * h + j] = count ? r.uni(-1, 1) * count : 0.0f;
    }
  c.in[7] = std::move(rc);
  c.in[8] = std::move(rv);
  c.in[9] = qwk ? Buffer() : std::move(rk);
  c.in[10] = std::move(cu);
  c.in[11] = std::move(cn);
  c.in[12] = i64({B}, pos);
}

struct AttnSpec {
  int64_t B, n, e, h, S;
  int W;
  bool qwk, bidir, lengths, stateful;
  std::vector<int64_t> pos;  // stateful
};

Case make_attention(Rng& r, const AttnSpec& s) {
  Case c;
  c.op = OpKind::vq_attention;
  c.params.window = s.W;
  c.params.quantize_window_keys = s.qwk;
  c.params.bidirectional = s.bidir;
  c.params.has_lengths = s.lengths;
  c.params.stateful = s.stateful;
  std::ostringstream name;
  name << "vq_attention B=" << s.B << " n=" << s.n << " e=" << s.e << " h=" << s.h << " S=" << s.S << " W=" << s.W
       << (s.qwk ? " qwk" : " rawkeys") << (s.bidir ? " bidirectional" : " causal") << (s.lengths ? " lengths" : "")
       << (s.stateful ? " stateful pos=" + shape_str(s.pos) : "");
  c.name = name.str();
  c.in.resize(static_cast<size_t>(VqAttentionIn::count_));
  c.in[0] = f32(r, {s.B, s.n, s.e}, -2, 2);
  c.in[1] = f32(r, {s.B, s.n, s.e}, -2, 2);
  c.in[2] = f32(r, {s.B, s.n, s.h});
  c.in[3] = i32_rand(r, {s.B, s.n}, 0, static_cast<int32_t>(s.S - 1));
  c.in[4] = f32(r, {s.S, s.e});
  c.in[5] = f32(r, {s.bidir ? 2 * s.W + 1 : s.W + 1});
  if (s.lengths) c.in[6] = i32({s.B}, some_lengths(r, s.B, s.n));
  if (s.stateful) add_state(r, c, s.B, s.W, s.S, s.e, s.h, s.qwk, s.pos);
  c.out.push_back(out(DType::f32, {s.B, s.n, s.h}));
  return c;
}

std::vector<int64_t> mixed_positions(Rng& r, int64_t B, int64_t W) {
  const int64_t choices[] = {0, 1, std::max<int64_t>(W - 1, 0), W, W + 1, W + 7, 1000 + r.randint(0, 50)};
  std::vector<int64_t> pos(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) pos[b] = choices[(b + r.randint(0, 6)) % 7];
  if (B >= 2) {
    pos[0] = std::max<int64_t>(W - 1, 0) / 2;  // pos < W (or 0)
    pos[1] = W + 3;                            // pos ≥ W
  }
  return pos;
}

std::vector<Case> attention_cases() {
  std::vector<Case> cs;
  Rng r(8);
  struct Size { int64_t B, n, e, h, S; };
  for (Size z : {Size{1, 1, 1, 1, 1}, {2, 7, 3, 5, 1}, {3, 33, 8, 7, 5}, {2, 65, 7, 33, 33}, {4, 20, 16, 16, 200}})
    for (int W : {0, 1, 3, 8, 70})
      for (bool qwk : {true, false})
        for (int mode = 0; mode < 5; ++mode) {  // causal, causal+lengths, bidir, bidir+lengths, stateful
          AttnSpec s{z.B, z.n, z.e, z.h, z.S, W, qwk, mode == 2 || mode == 3, mode == 1 || mode == 3, mode == 4, {}};
          if (s.stateful) s.pos = mixed_positions(r, z.B, W);
          cs.push_back(make_attention(r, s));
        }
  // Decode: n = 1 with several rows at mixed positions (pos < W and pos ≥ W).
  for (int W : {0, 1, 4, 16})
    for (bool qwk : {true, false})
      for (int64_t S : {1, 9}) {
        AttnSpec s{6, 1, 5, 6, S, W, qwk, false, false, true, {}};
        s.pos = {0, 1, std::max(W - 1, 0), W, W + 1, 500};
        cs.push_back(make_attention(r, s));
      }
  return cs;
}

std::vector<Case> elementwise_cases() {
  std::vector<Case> cs;
  Rng r(9);
  int variant = 0;
  for (auto [T, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {33, 65}, {1000, 129}})
    for (OpKind op : {OpKind::mul, OpKind::add, OpKind::gated_residual})
      for (int alias : {-1, 0, 1}) {
        if (alias == 1 && op == OpKind::gated_residual) continue;
        Case c;
        c.op = op;
        c.alias = alias;
        const auto shape = seq_shape(T, d, variant++);
        c.name = std::string(op_name(op)) + " x=" + shape_str(shape) + (alias >= 0 ? " in place of input " + std::to_string(alias) : "");
        const int nin = op == OpKind::gated_residual ? 4 : 2;
        for (int i = 0; i < nin; ++i) c.in.push_back(f32(r, shape, -3, 3));
        c.out.push_back(out(DType::f32, shape));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> mean_pool_cases() {
  std::vector<Case> cs;
  Rng r(10);
  for (auto [B, n, d] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 7, 5}, {4, 33, 65}, {2, 65, 3}, {4, 400, 65}})
    for (bool lengths : {true, false}) {
      Case c;
      c.op = OpKind::mean_pool;
      c.name = "mean_pool B=" + std::to_string(B) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
               (lengths ? " lengths" : "");
      c.in.push_back(f32(r, {B, n, d}, -3, 3));
      std::vector<int32_t> len(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) len[b] = b == 0 ? 1 : static_cast<int32_t>(r.randint(1, n));
      c.in.push_back(lengths ? i32({B}, len) : Buffer());
      c.out.push_back(out(DType::f32, {B, d}));
      cs.push_back(std::move(c));
    }
  return cs;
}

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

// ---------------------------------------------------------------------------------------------
// check_op_call refusals
// ---------------------------------------------------------------------------------------------
std::string refusal(const Case& c) {
  try {
    check_op_call(c.call());
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
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
  for (auto [B, n, d, N] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {2, 13, 7, 16}, {3, 9, 33, 2}}) {
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

// =============================================================================================
// check_op_call
// =============================================================================================
TEST_CASE("check_op_call refuses malformed calls and says why", "[op_check]") {
  Rng r(15);
  auto expect_refusal = [](const Case& c, std::vector<std::string> parts) {
    const std::string msg = refusal(c);
    INFO("message: " << msg);
    REQUIRE(!msg.empty());
    for (const std::string& p : parts) CHECK(msg.find(p) != std::string::npos);
  };
  const Case lin = linear_cases()[20];
  REQUIRE(refusal(lin).empty());
  {
    Case c = lin;
    c.in[1] = f32(r, {lin.in[1].shape()[0], lin.in[1].shape()[1] + 1});
    expect_refusal(c, {"linear", "input 1 (W)", "expected shape [67, 300]", "found [67, 301]"});
  }
  {
    Case c = lin;
    c.in.pop_back();
    expect_refusal(c, {"linear", "expected 3 inputs", "found 2"});
  }
  {
    Case c = lin;  // only W may be in a backend's private layout
    c.in[0] = Buffer(DType::f32, lin.in[0].shape(), lin.in[0].bytes(), 1);
    expect_refusal(c, {"linear", "input 0 (x)", "must be dense row-major", "private layout 1"});
  }
  {
    Case c = lin;
    c.in[1] = i32_rand(r, lin.in[1].shape(), 0, 1);
    expect_refusal(c, {"linear", "input 1 (W)", "expected dtype f32 or bf16, found i32"});
  }
  {
    Case c = lin;
    c.alias = 0;  // output 0 written over x: linear cannot run in place
    c.out[0] = out(DType::f32, c.in[0].shape());
    c.in[1] = f32(r, {c.in[0].shape().back(), c.in[0].shape().back()});
    c.in[2] = Buffer();
    expect_refusal(c, {"linear", "output 0 (y)", "overlaps input 0 (x)"});
  }
  AttnSpec s{2, 5, 3, 4, 6, 2, false, false, false, true, {0, 7}};
  const Case att = make_attention(r, s);
  REQUIRE(refusal(att).empty());
  {
    Case c = att;
    c.params.bidirectional = true;
    c.in[5] = f32(r, {5});
    expect_refusal(c, {"vq_attention", "stateful", "causal"});
  }
  {
    Case c = att;
    c.in[5] = f32(r, {4});
    expect_refusal(c, {"vq_attention", "input 5 (rel_bias)", "[W + 1]", "found [4]"});
  }
  {
    Case c = att;
    c.in[9] = Buffer();
    expect_refusal(c, {"vq_attention", "input 9 (ring_keys)", "missing"});
  }
  {
    Case c = att;
    c.in[3] = f32(r, {2, 5});
    expect_refusal(c, {"input 3 (codes)", "expected dtype i32", "found f32"});
  }
  {
    Case c = att;
    c.in[2] = f32(r, {2, 5, 5});
    expect_refusal(c, {"input 8 (ring_values)", "[R, W, h]"});
  }
  {
    AttnSpec t{2, 5, 3, 4, 6, 2, true, false, false, false, {}};
    Case c = make_attention(r, t);
    REQUIRE(refusal(c).empty());
    c.in[6] = i32({2}, {5, 5});  // lengths without has_lengths
    expect_refusal(c, {"input 6 (lengths)", "must be absent", "has_lengths is false"});
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    REQUIRE(refusal(c).empty());
    c.in[6] = Buffer();
    expect_refusal(c, {"ema", "input 6 (state)", "missing", "stateful"});
    Case d = make_ema(r, 2, 5, 3, 4, true, false, false);
    d.in[1] = f32(r, {3, 4});  // bidirectional needs D' = 2d rows
    expect_refusal(d, {"ema", "input 1 (q)", "[6, 4]", "2d"});
  }
  {
    Case c = norm_cases()[0];  // layernorm, affine
    c.in[2] = Buffer();
    expect_refusal(c, {"norm", "input 2 (bias)", "missing", "layernorm"});
  }
  {
    Case c = mix_gates_cases()[1];
    c.out[3] = out(DType::f32, {1, 7, 3});  // h = 3 no longer adds up to mx's width
    expect_refusal(c, {"mix_gates", "input 0 (mx)", "2d + e + h"});
  }
  {
    // A W = 0 stateful call may pass its (empty) ring as zero-size tensors or leave it out.
    AttnSpec t{2, 3, 3, 4, 6, 0, false, false, false, true, {0, 4}};
    Case c = make_attention(r, t);
    CHECK(refusal(c).empty());
    c.in[7] = c.in[8] = c.in[9] = Buffer();
    CHECK(refusal(c).empty());
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    c.in[static_cast<size_t>(EmaIn::state)] = f32(r, {4, 3, 4});  // 4 state rows, 2 batch rows, no state_rows
    expect_refusal(c, {"ema", "input 6 (state)", "4 rows but the call 2", "pass state_rows"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({3}, {0, 1, 2});
    expect_refusal(c, {"ema", "input 7 (state_rows)", "expected shape [2]"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({2}, {3, 1});
    CHECK(refusal(c).empty());
  }
  {  // descriptors name the params an op reads, and only those
    OpParams p;
    p.activation = Activation::silu;
    p.window = 7;
    CHECK(describe_op(OpKind::linear, p) == "linear(activation=1)");
    CHECK(describe_op(OpKind::add, p) == "add()");
    CHECK(describe_op(OpKind::vq_attention, p) ==
          "vq_attention(bidirectional=0, stateful=0, has_lengths=0, window=7, quantize_window_keys=1)");
  }
  {
    Case c = elementwise_cases()[1];  // mul in place of input 0
    REQUIRE(c.alias == 0);
    CHECK(refusal(c).empty());
  }
}

// =============================================================================================
// Benchmarks (hidden; run with: test_ops "[.perf]")
// =============================================================================================
TEST_CASE("perf: per-op CPU speed", "[.perf]") {
  Rng r(16);
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (isa > best) break;
    cpu_force_isa(isa);
    for (int threads : {1, 2}) {
      const CpuContext ctx{threads};
      std::ostringstream line;
      line << cpu_isa_name(isa) << " threads=" << threads << ":";
      // linear y[T, N] = x[T, K]·Wᵀ + b with W packed as a model packs it, in GFLOP/s.
      auto linear_gflops = [&](const char* label, int64_t T, int64_t K, int64_t N) {
        Case c;
        c.op = OpKind::linear;
        c.in = {f32(r, {T, K}), f32(r, {N, K}), f32(r, {N})};
        c.prepared[1] = prepared_linear(c.in[1]);
        c.out.push_back(out(DType::f32, {T, N}));
        const OpCall call = c.call(true);
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " " << label << " " << 2.0 * static_cast<double>(T * K * N) / t * 1e-9 << " GFLOP/s;";
      };
      linear_gflops("gemv1024", 1, 1024, 1024);
      linear_gflops("gemm256x1024x1024", 256, 1024, 1024);
      linear_gflops("gemm12544x64x224", 12544, 64, 224);  // fashion-seq's mx_proj, 16 × 784 pixels
      for (bool bidir : {false, true}) {  // vq_attention n = 2048, W = 64, S = 256, e = 64, h = 128
        AttnSpec s{1, 2048, 64, 128, 256, 64, true, bidir, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_attention(" << (bidir ? "bidir" : "causal") << ",n=2048,W=64,S=256,e=64,h=128) "
             << 2048 / t << " tok/s;";
      }
      {  // the fashion-seq classifier's layer shape: bidirectional, codes of every key
        AttnSpec s{16, 784, 32, 64, 64, 32, true, true, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        Case codes;
        codes.op = OpKind::vq_codes;
        codes.in = {f32(r, {16 * 784, 32}), f32(r, {64, 32})};
        codes.out.push_back(out(DType::i32, {16 * 784}));
        const OpCall codes_call = codes.call();
        const double tc = time_it([&] { cpu_run(codes_call, ctx); });
        line << " fashion-seq vq_attention(bidir,B=16,n=784,W=32,S=64,e=32,h=64) + vq_codes " << 16 * 784 / (t + tc)
             << " tok/s;";
      }
      {  // decode: B = 1, n = 1
        AttnSpec s{1, 1, 64, 128, 256, 64, true, false, false, true, {5000}};
        const Case c = make_attention(r, s);
        double t = 0;
        {
          Case run = c;
          const OpCall call = run.call();
          t = time_it([&] { cpu_run(call, ctx); });  // pos stays; the cache keeps growing
        }
        line << " vq_attention decode " << t * 1e6 << " us/token;";
      }
      {  // ema n = 2048, d = 256, N = 16
        Case c = make_ema(r, 1, 2048, 256, 16, false, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(n=2048,d=256,N=16) " << 2048 / t << " tok/s;";
      }
      {  // ema bidirectional B = 16, n = 784, d = 64, N = 16 (the fashion-seq classifier's shape)
        Case c = make_ema(r, 16, 784, 64, 16, true, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(bidir,B=16,n=784,d=64,N=16) " << 16 * 784 / t << " tok/s;";
      }
      {  // vq_codes T = 2048, e = 64, S = 256
        Case c;
        c.op = OpKind::vq_codes;
        c.in = {f32(r, {2048, 64}), f32(r, {256, 64})};
        c.out.push_back(out(DType::i32, {2048}));
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_codes(T=2048,e=64,S=256) " << 2048 / t << " keys/s";
      }
      std::printf("%s\n", line.str().c_str());
    }
  }
  cpu_force_isa(best);
  SUCCEED();
}
