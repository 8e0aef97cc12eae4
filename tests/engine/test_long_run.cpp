// A million decode steps (design page invariant 7): the decoding state stays finite, attention
// over the per-code sums matches an fp64 recomputation, and memory stays flat.
//  * op level: the CPU vq_attention kernel decodes 10^6 random tokens (values in [0, 1), so the
//    per-code sums grow without bound: the worst case for fp32 drift) beside an fp64 shadow of
//    the state; every step's output is compared with the fp64 attention of the shadow.
//  * model level: a fixture LM decodes 10^6 greedy steps; every logit stays finite and the
//    resident memory after 10^6 steps is that after 10^3.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "engine/longvq.h"
#include "kernels/cpu/cpu_ops.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

constexpr int64_t kSteps = 1'000'000;

long resident_kib() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

TEST_CASE("10^6 decode steps of vq_attention match an fp64 recomputation", "[long]") {
  constexpr int64_t e = 8, h = 8, S = 16, W = 8;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> sym(-1.0f, 1.0f), pos01(0.0f, 1.0f);
  std::uniform_int_distribution<int32_t> any_code(0, S - 1);
  std::vector<float> C(S * e), T(W + 1), q(e), k(e), v(h), o(h);
  for (float& x : C) x = sym(rng);
  for (float& x : T) x = 0.5f * sym(rng);
  std::vector<int32_t> code(1), ring_codes(W, -1), cache_n(S, 0);
  std::vector<float> ring_values(W * h, 0.0f), cache_u(S * h, 0.0f);
  std::vector<int64_t> pos(1, 0);
  // The fp64 shadow of the state.
  std::vector<double> u64(S * h, 0.0), ring64(W * h, 0.0);
  std::vector<int64_t> n64(S, 0);
  std::vector<int32_t> ring_code64(W, -1);

  OpCall call{OpKind::vq_attention, {}, {}, {}};
  call.params.window = static_cast<int>(W);
  call.params.stateful = true;
  call.inputs = {{q.data(), DType::f32, {1, 1, e}},       {k.data(), DType::f32, {1, 1, e}},
                 {v.data(), DType::f32, {1, 1, h}},       {code.data(), DType::i32, {1, 1}},
                 {C.data(), DType::f32, {S, e}},          {T.data(), DType::f32, {W + 1}},
                 {},                                      {ring_codes.data(), DType::i32, {1, W}},
                 {ring_values.data(), DType::f32, {1, W, h}}, {},
                 {cache_u.data(), DType::f32, {1, S, h}}, {cache_n.data(), DType::i32, {1, S}},
                 {pos.data(), DType::i64, {1}},           {}};  // state_rows: row 0 of a 1-row state
  REQUIRE(call.inputs.size() == op_desc(OpKind::vq_attention).inputs.size());
  call.outputs = {{o.data(), DType::f32, {1, 1, h}}};

  double worst = 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(e));
  for (int64_t P = 0; P < kSteps; ++P) {
    for (float& x : q) x = sym(rng);
    for (float& x : v) x = pos01(rng);
    code[0] = any_code(rng);
    cpu_run(call, CpuContext{1});
    // fp64 attention: window (ring + current key) with bias, then the per-code memory.
    std::vector<std::pair<double, const double*>> local;
    std::vector<double> cur(v.begin(), v.end());
    auto qc = [&](int32_t s) {
      double d = 0;
      for (int64_t i = 0; i < e; ++i) d += static_cast<double>(q[i]) * C[s * e + i];
      return d * scale;
    };
    double m = -INFINITY;
    for (int64_t dist = 0; dist <= W && dist <= P; ++dist) {
      const int64_t slot = (P - dist) % W;
      const int32_t c = dist == 0 ? code[0] : ring_code64[slot];
      const double s = qc(c) + T[dist];
      local.push_back({s, dist == 0 ? cur.data() : &ring64[slot * h]});
      m = std::max(m, s);
    }
    for (int32_t s = 0; s < S; ++s)
      if (n64[s] > 0) m = std::max(m, qc(s) + std::log(static_cast<double>(n64[s])));
    std::vector<double> num(h, 0.0);
    double den = 0;
    for (auto& [s, val] : local) {
      const double w = std::exp(s - m);
      for (int64_t j = 0; j < h; ++j) num[j] += w * val[j];
      den += w;
    }
    for (int32_t s = 0; s < S; ++s)
      if (n64[s] > 0) {
        const double w = std::exp(qc(s) - m);
        for (int64_t j = 0; j < h; ++j) num[j] += w * u64[s * h + j];
        den += w * static_cast<double>(n64[s]);
      }
    for (int64_t j = 0; j < h; ++j) worst = std::max(worst, std::fabs(o[j] - num[j] / den));
    // push_key in the shadow; the kernel updated its own state; the caller advances pos.
    const int64_t slot = P % W;
    if (P >= W) {
      for (int64_t j = 0; j < h; ++j) u64[ring_code64[slot] * h + j] += ring64[slot * h + j];
      n64[ring_code64[slot]] += 1;
    }
    ring_code64[slot] = code[0];
    for (int64_t j = 0; j < h; ++j) ring64[slot * h + j] = v[j];
    pos[0] += 1;
  }
  // The fp32 state against the fp64 one: counts exact, sums within fp32 accumulation error.
  double sum_err = 0, sum_mag = 0;
  for (int32_t s = 0; s < S; ++s) {
    REQUIRE(cache_n[s] == n64[s]);
    for (int64_t j = 0; j < h; ++j) {
      REQUIRE(std::isfinite(cache_u[s * h + j]));
      sum_err = std::max(sum_err, std::fabs(cache_u[s * h + j] - u64[s * h + j]));
      sum_mag = std::max(sum_mag, std::fabs(u64[s * h + j]));
    }
  }
  std::printf("10^6 steps: max |attention − fp64| %.3g (outputs in [0, 1)); per-code sums up to %.0f, "
              "max |fp32 − fp64| %.3g (%.2g relative)\n", worst, sum_mag, sum_err, sum_err / sum_mag);
  CHECK(worst < 1e-5);
  CHECK(sum_err / sum_mag < 1e-4);
}

TEST_CASE("a fixture LM decodes 10^6 steps: finite logits, flat memory", "[long]") {
  auto model = Model::load(fs::path(LONGVQ_FIXTURES_DIR) / "lm_bytes_layernorm_tied");
  Session session(model, {.max_batch = 1, .threads = 1});
  State state = session.new_state(1);
  const int64_t V = model->config().vocab_size;
  const size_t state_bytes = state.bytes_per_sequence();
  int32_t token = 0;
  long rss_1k = 0;
  bool finite = true;
  for (int64_t step = 1; step <= kSteps; ++step) {
    auto logits = session.decode(state, std::span<const int32_t>(&token, 1));
    int32_t best = 0;
    for (int64_t i = 0; i < V; ++i) {
      finite = finite && std::isfinite(logits[i]);
      if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    }
    token = (best + static_cast<int32_t>(step % 7)) % static_cast<int32_t>(V);  // keep the text moving
    if (step == 1000) rss_1k = resident_kib();
  }
  const long rss_1m = resident_kib();
  std::printf("10^6 decode steps: resident memory %ld KiB after 10^3 steps, %ld KiB after 10^6; state %zu bytes\n",
              rss_1k, rss_1m, state.bytes_per_sequence());
  CHECK(finite);
  CHECK(state.positions()[0] == kSteps);
  CHECK(state.bytes_per_sequence() == state_bytes);
  CHECK(rss_1m - rss_1k < 512);  // KiB: nothing grows with the context
}
