// The engine's invariants on the CUDA backend (hidden tag "[cuda-invariants]": run by
// `test_engine --backend cuda "[cuda-invariants]"`, ctest test_engine_cuda_invariants, and
// tools/gpu_check.sh, which collects the "cuda-invariants:" lines they print).
//
// On the CPU a position's logits have the same bits however they are computed (test_parity,
// test_rows). On CUDA they need not: cuBLAS picks a GEMV kernel for decode and GEMM kernels
// (other reduction orders) for prefill, and the chunked EMA scan splits time by the call's
// length. What must hold on CUDA, and is checked here:
//  * decode step by step, chunked prefill and one whole-sequence forward give the same codes at
//    every position of every layer (a near-tie code that flips changes every later logit), and
//    logits within 1e-4 of their scale (the fixtures' tolerance); whether they are bit-identical,
//    and the largest difference, are printed, for cuBLAS and for the fixed-order linear kernel
//    (LONGVQ_CUDA_LINEAR=fixed), and for a sequence alone vs in a decode batch of 64;
//  * CUDA graphs on == off (LONGVQ_CUDA_GRAPHS=0), bit for bit: decode, prefill, forward, with the
//    backend's counters showing that graphs were recorded and replayed;
//  * the kernel scratch growing after a graph was recorded (a long forward, the EMA's FFT form)
//    drops the graphs, which are recorded again, and the results stay those of graphs off;
//  * a whole sequence in the EMA's FFT form and in the scan: same codes, logits within 1e-4.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "tests/backend_under_test.h"
#include "tests/scoped_env.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

const fs::path kFix = LONGVQ_FIXTURES_DIR;
const fs::path kModels = fs::path(LONGVQ_SOURCE_DIR) / "models";

void require_cuda() {
  if (test::backend_under_test() != BackendKind::cuda) FAIL("the [cuda-invariants] tests need --backend cuda");
}

std::vector<fs::path> language_models() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kFix))
    if (e.is_directory() && e.path().filename().string().rfind("lm_", 0) == 0) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  out.push_back(kModels / "austen-lm");
  return out;
}

std::shared_ptr<const Model> load(const fs::path& dir) { return Model::load(dir, {.backend = BackendKind::cuda}); }

// A Session whose backend is made with var=value in the environment (a CUDA backend reads its
// options when it is made); var = nullptr: the plain environment.
std::unique_ptr<Session> session_with(std::shared_ptr<const Model> model, SessionOptions options, const char* var,
                                      const char* value) {
  if (!var) return std::make_unique<Session>(std::move(model), options);
  test::ScopedEnv env(var, value);
  return std::make_unique<Session>(std::move(model), options);
}

// Every position's logits and every layer's code, in position order.
struct Run {
  std::vector<float> logits;
  std::vector<std::vector<int32_t>> codes;  // [layer][position]
};

void take_codes(Session& s, Run& run) {
  const int layers = s.model().config().n_layers;
  run.codes.resize(static_cast<size_t>(layers));
  for (int i = 0; i < layers; ++i) {
    const std::vector<int32_t> c = s.layer_codes(i);
    run.codes[static_cast<size_t>(i)].insert(run.codes[static_cast<size_t>(i)].end(), c.begin(), c.end());
  }
}

Run forward_run(Session& s, const std::vector<int32_t>& tokens) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  Run r;
  const auto l = s.forward(tokens, std::vector<int32_t>{n}, n);
  r.logits.assign(l.begin(), l.end());
  take_codes(s, r);
  return r;
}

Run decode_run(Session& s, const std::vector<int32_t>& tokens) {
  Run r;
  State state = s.new_state(1);
  for (int32_t t : tokens) {
    const auto l = s.decode(state, std::vector<int32_t>{t});
    r.logits.insert(r.logits.end(), l.begin(), l.end());
    take_codes(s, r);
  }
  return r;
}

// Chunks of 1, 3, 7, 15, 31, ... tokens (each call one prefill of that many; the session's
// max_chunk must not split them, since layer_codes holds the last graph run only).
Run prefill_run(Session& s, const std::vector<int32_t>& tokens) {
  Run r;
  State state = s.new_state(1);
  const size_t n = tokens.size();
  for (size_t lo = 0, len = 1; lo < n; lo += len, len = 2 * len + 1) {
    const std::vector<int32_t> chunk(tokens.begin() + static_cast<int64_t>(lo),
                                     tokens.begin() + static_cast<int64_t>(std::min(n, lo + len)));
    const auto l = s.prefill(state, chunk);
    r.logits.insert(r.logits.end(), l.begin(), l.end());
    take_codes(s, r);
  }
  return r;
}

struct Diff {
  bool bitwise = true;
  double max_abs = 0, scale = 1;
  size_t flips = 0;  // positions × layers whose code differs
  std::string first_flip;
};

Diff diff(const Run& a, const Run& b) {
  Diff d;
  REQUIRE(a.logits.size() == b.logits.size());
  d.bitwise = std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0;
  for (size_t i = 0; i < a.logits.size(); ++i) {
    d.scale = std::max(d.scale, std::fabs(static_cast<double>(b.logits[i])));
    d.max_abs = std::max(d.max_abs, std::fabs(static_cast<double>(a.logits[i]) - b.logits[i]));
  }
  REQUIRE(a.codes.size() == b.codes.size());
  for (size_t layer = 0; layer < a.codes.size(); ++layer) {
    REQUIRE(a.codes[layer].size() == b.codes[layer].size());
    for (size_t t = 0; t < a.codes[layer].size(); ++t)
      if (a.codes[layer][t] != b.codes[layer][t]) {
        if (d.flips++ == 0)
          d.first_flip = "layer " + std::to_string(layer) + " position " + std::to_string(t) + ": " +
                         std::to_string(a.codes[layer][t]) + " vs " + std::to_string(b.codes[layer][t]);
      }
  }
  return d;
}

// Prints one report line and checks the invariant: same codes, logits within tol of their scale.
void report(const std::string& what, const Diff& d, double tol = 1e-4) {
  std::printf("cuda-invariants: %s: logits %s, max |diff| %.3g (scale %.3g); codes: %zu flips%s%s\n", what.c_str(),
              d.bitwise ? "bit-identical" : "differ", d.max_abs, d.scale, d.flips, d.flips ? ", first at " : "",
              d.first_flip.c_str());
  std::fflush(stdout);
  INFO(what << ": max |diff| " << d.max_abs << ", " << d.flips << " code flips " << d.first_flip);
  CHECK(d.flips == 0);
  CHECK(d.max_abs <= tol * d.scale);
}

std::vector<int32_t> some_tokens(int64_t V, int32_t n, int32_t salt = 0) {
  std::vector<int32_t> t;
  for (int32_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 7 + 3 + salt) % V));
  return t;
}

}  // namespace

TEST_CASE("cuda-invariants: decode == chunked prefill == forward: same codes, logits to 1e-4", "[.cuda-invariants]") {
  require_cuda();
  for (const fs::path& dir : language_models()) {
    const auto model = load(dir);
    const int64_t V = model->config().vocab_size;
    const int32_t n = dir.filename() == "austen-lm" ? 300 : 45;  // austen-lm: across windows (W = 32) and chunks
    const std::vector<int32_t> tokens = some_tokens(V, n);
    for (const char* linear : {"cublas", "fixed"}) {
      // Chunks of 1, 3, 7, ..., 127 tokens, each one graph run (≤ max_chunk), so layer_codes has them all.
      auto s = session_with(model, {.max_chunk = 128, .max_length = n, .layer_outputs = true}, "LONGVQ_CUDA_LINEAR",
                            linear);
      const Run whole = forward_run(*s, tokens), steps = decode_run(*s, tokens), chunks = prefill_run(*s, tokens);
      const std::string where = dir.filename().string() + " [linear " + linear + "]";
      report(where + " decode vs forward", diff(steps, whole));
      report(where + " prefill vs forward", diff(chunks, whole));
      report(where + " decode vs prefill", diff(steps, chunks));
    }
  }
}

TEST_CASE("cuda-invariants: a sequence decoded alone == the same sequence in a decode batch of 64", "[.cuda-invariants]") {
  require_cuda();
  for (const fs::path& dir : {kFix / "lm_bytes_layernorm_tied", kModels / "austen-lm"}) {
    const auto model = load(dir);
    const int64_t V = model->config().vocab_size;
    constexpr int32_t kRows = 64, kSteps = 40;
    for (const char* linear : {"cublas", "fixed"}) {
      auto s = session_with(model, {.max_batch = kRows, .layer_outputs = true}, "LONGVQ_CUDA_LINEAR", linear);
      const std::vector<int32_t> mine = some_tokens(V, kSteps);
      Run alone = decode_run(*s, mine), batched;
      State state = s->new_state(kRows);
      std::mt19937 rng(7);
      for (int32_t t = 0; t < kSteps; ++t) {
        std::vector<int32_t> step(kRows);
        for (int32_t& x : step) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(V));
        step[17] = mine[static_cast<size_t>(t)];  // the sequence rides in row 17
        const auto l = s->decode(state, step);
        batched.logits.insert(batched.logits.end(), l.begin() + 17 * V, l.begin() + 18 * V);
        batched.codes.resize(static_cast<size_t>(model->config().n_layers));
        for (int i = 0; i < model->config().n_layers; ++i)
          batched.codes[static_cast<size_t>(i)].push_back(s->layer_codes(i)[17]);
      }
      report(dir.filename().string() + " [linear " + linear + "] batch 64 vs alone", diff(batched, alone), 1e-5);
    }
  }
}

TEST_CASE("cuda-invariants: CUDA graphs on == off, bit for bit", "[.cuda-invariants]") {
  require_cuda();
  for (const fs::path& dir : language_models()) {
    const auto model = load(dir);
    const int64_t V = model->config().vocab_size;
    auto work = [&](Session& s) {
      std::vector<float> all;
      State st = s.new_state(4);
      const std::vector<int32_t> prompt = some_tokens(V, 4 * 13);
      auto p = s.prefill(st, prompt);  // 13 tokens per row, chunks of 8 + 5
      all.insert(all.end(), p.begin(), p.end());
      for (int step = 0; step < 40; ++step) {
        const std::vector<int32_t> tok = some_tokens(V, 4, step);
        auto l = s.decode(st, tok);
        all.insert(all.end(), l.begin(), l.end());
      }
      const std::vector<int32_t> seq = some_tokens(V, 45, 5);
      for (int rep = 0; rep < 3; ++rep) {  // recorded on the second run, replayed on the third
        auto f = s.forward(seq, std::vector<int32_t>{45}, 45);
        all.insert(all.end(), f.begin(), f.end());
      }
      return all;
    };
    const SessionOptions o{.max_batch = 4, .max_chunk = 8, .max_length = 45};
    auto on = session_with(model, o, nullptr, nullptr), off = session_with(model, o, "LONGVQ_CUDA_GRAPHS", "0");
    const std::vector<float> a = work(*on), b = work(*off);
    const GraphStats son = on->backend().graph_stats(), soff = off->backend().graph_stats();
    std::printf("cuda-invariants: %s graphs on vs off: %s; on: %llu recorded, %llu replays, %llu eager runs; off: %llu "
                "eager runs\n",
                dir.filename().string().c_str(),
                a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0 ? "bit-identical"
                                                                                                        : "DIFFER",
                static_cast<unsigned long long>(son.recorded), static_cast<unsigned long long>(son.replayed),
                static_cast<unsigned long long>(son.eager), static_cast<unsigned long long>(soff.eager));
    INFO(dir.filename());
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(son.recorded >= 2);   // the decode step and the forward
    CHECK(son.replayed >= 40);  // 39 decode steps and a forward, at least
    CHECK(soff.recorded == 0);
  }
}

TEST_CASE("cuda-invariants: scratch growing after a graph was recorded: graphs re-recorded, results as graphs off",
          "[.cuda-invariants]") {
  require_cuda();
  const auto model = load(kModels / "austen-lm");
  const int64_t V = model->config().vocab_size;
  auto work = [&](Session& s) {
    std::vector<float> all;
    State st = s.new_state(1);
    auto p = s.prefill(st, some_tokens(V, 5));
    all.insert(all.end(), p.begin(), p.end());
    auto decode = [&](int steps) {
      for (int i = 0; i < steps; ++i) {
        auto l = s.decode(st, some_tokens(V, 1, i));
        all.insert(all.end(), l.begin(), l.end());
      }
    };
    decode(10);  // the decode graph is recorded with the small scratch of one query
    // A long whole sequence: vq_attention's per-block memories and the EMA's FFT form need far
    // more scratch, which moves it.
    const std::vector<int32_t> seq = some_tokens(V, 2100, 3);
    auto f = s.forward(seq, std::vector<int32_t>{2100}, 2100);
    all.insert(all.end(), f.end() - V, f.end());
    decode(10);  // must not replay a graph that points at the old scratch
    return all;
  };
  const SessionOptions o{.max_length = 2100};
  auto on = session_with(model, o, nullptr, nullptr), off = session_with(model, o, "LONGVQ_CUDA_GRAPHS", "0");
  const std::vector<float> a = work(*on), b = work(*off);
  const GraphStats st = on->backend().graph_stats();
  const bool same = a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  std::printf("cuda-invariants: austen-lm scratch growth after recording: %s to graphs off; %llu recorded, %llu dropped, "
              "%llu replays\n",
              same ? "bit-identical" : "DIFFERENT", static_cast<unsigned long long>(st.recorded),
              static_cast<unsigned long long>(st.dropped), static_cast<unsigned long long>(st.replayed));
  CHECK(same);
  CHECK(st.dropped >= 1);
  CHECK(st.recorded >= 2);  // the decode graph, again after the drop
}

TEST_CASE("cuda-invariants: whole sequences in the EMA's FFT form == the scan: same codes, logits to 1e-4",
          "[.cuda-invariants]") {
  require_cuda();
  struct Item { fs::path dir; int32_t n; };
  for (const Item& it : {Item{kModels / "austen-lm", 4096}, Item{kModels / "listops", 2000}, Item{kModels / "fashion-seq", 784},
                         Item{kFix / "cls_batchnorm_tokens", 40}}) {
    const auto model = load(it.dir);
    const ModelConfig& cfg = model->config();
    const SessionOptions o{.max_batch = 2, .max_length = it.n, .layer_outputs = true};
    auto fft = session_with(model, o, "LONGVQ_CUDA_EMA_FFT", "always"), scan = session_with(model, o, "LONGVQ_CUDA_EMA_FFT", "never");
    const std::vector<int32_t> lengths = {it.n, it.n * 2 / 3};
    auto run = [&](Session& s) {
      Run r;
      if (cfg.embedding.kind == EmbeddingConfig::Kind::real) {
        std::normal_distribution<float> normal;
        std::mt19937 g(3);
        std::vector<float> x(static_cast<size_t>(2 * it.n));
        for (float& v : x) v = normal(g);
        const auto l = s.forward(x, lengths, it.n);
        r.logits.assign(l.begin(), l.end());
      } else {
        std::vector<int32_t> x(static_cast<size_t>(2 * it.n));
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>((i * 13 + 5) % static_cast<size_t>(cfg.vocab_size));
        const auto l = s.forward(x, lengths, it.n);
        r.logits.assign(l.begin(), l.end());
      }
      take_codes(s, r);
      for (auto& layer : r.codes)  // padded positions of row 1 carry no meaning
        for (int32_t t = lengths[1]; t < it.n; ++t) layer[static_cast<size_t>(it.n + t)] = 0;
      return r;
    };
    const Run a = run(*fft), b = run(*scan);
    report(it.dir.filename().string() + " n=" + std::to_string(it.n) + " FFT form vs scan", diff(a, b));
    if (cfg.task == ModelConfig::Task::classify) {  // the same predicted class
      const int64_t C = static_cast<int64_t>(a.logits.size()) / 2;
      for (int64_t row = 0; row < 2; ++row) {
        const auto ia = std::max_element(a.logits.begin() + row * C, a.logits.begin() + (row + 1) * C);
        const auto ib = std::max_element(b.logits.begin() + row * C, b.logits.begin() + (row + 1) * C);
        CHECK(ia - a.logits.begin() == ib - b.logits.begin());
      }
    }
  }
}
