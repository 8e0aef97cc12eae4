// The engine against the Python reference on every committed fixture (design page §7):
// invariant 6 (logits, every layer's output, identical codes), and in C++ invariants 2–5:
// decode == forward, split prefill == one prefill == all steps, batched == alone,
// save → restore → continue == continue, on the backend under test (--backend cpu|cuda).
// Tolerance: max |a − b| ≤ 1e-4 · max(1, max |expected|).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "loaders/safetensors.h"
#include "tests/backend_under_test.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

constexpr double kTol = 1e-4;

std::vector<std::string> fixtures(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(LONGVQ_FIXTURES_DIR))
    if (entry.is_directory() && entry.path().filename().string().rfind(prefix, 0) == 0)
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  REQUIRE(!out.empty());
  return out;
}

template <typename T>
std::vector<T> read(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo& t = f.at(name);
  std::vector<T> out(t.nbytes / sizeof(T));
  std::memcpy(out.data(), t.data, t.nbytes);
  return out;
}

double scale_of(const std::vector<float>& v) {
  double m = 1.0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// Compares a[i] with b[i] for the indices `keep` selects (all when keep is empty).
void require_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                   double tol = kTol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
  INFO(what << ": max abs diff " << worst << ", allowed " << tol * scale_of(want));
  CHECK(worst <= tol * scale_of(want));
}

struct Fixture {
  std::shared_ptr<const Model> model;
  SafetensorsFile expected;
  int64_t batch, n;

  explicit Fixture(const std::string& dir)
      : model(Model::load(dir, ModelOptions{.backend = test::backend_under_test()})), expected(fs::path(dir) / "expected.safetensors", LoadMode::read) {
    const TensorInfo& in = expected.at("inputs");
    batch = in.shape[0];
    n = in.shape[1];
  }
};

// Rows [b, 0..len) of a [B, n, width] tensor.
std::vector<float> valid_rows(const std::vector<float>& x, int64_t n, int64_t width, const std::vector<int32_t>& lens) {
  std::vector<float> out;
  for (size_t b = 0; b < lens.size(); ++b)
    out.insert(out.end(), x.begin() + static_cast<int64_t>(b) * n * width,
               x.begin() + (static_cast<int64_t>(b) * n + lens[b]) * width);
  return out;
}

}  // namespace

TEST_CASE("classifiers match the reference: logits, layer outputs, codes", "[parity]") {
  for (const std::string& dir : fixtures("cls_")) {
    SECTION(fs::path(dir).filename().string()) {
      Fixture fx(dir);
      const ModelConfig& c = fx.model->config();
      Session session(fx.model, {.max_batch = fx.batch, .max_length = fx.n, .layer_outputs = true});
      const auto lengths = read<int32_t>(fx.expected, "lengths");
      std::vector<float> logits;
      if (c.embedding.kind == EmbeddingConfig::Kind::token) {
        auto tokens = read<int32_t>(fx.expected, "inputs");
        auto out = session.forward(tokens, lengths, fx.n);
        logits.assign(out.begin(), out.end());
      } else {
        auto inputs = read<float>(fx.expected, "inputs");
        auto out = session.forward(inputs, lengths, fx.n);
        logits.assign(out.begin(), out.end());
      }
      for (int i = 0; i < c.n_layers; ++i) {
        const std::string L = "layers." + std::to_string(i) + ".";
        auto codes = session.layer_codes(i);
        auto want_codes = read<int32_t>(fx.expected, L + "codes");
        for (size_t b = 0; b < lengths.size(); ++b)
          for (int32_t t = 0; t < lengths[b]; ++t) {
            INFO(L << "codes, row " << b << " position " << t);
            REQUIRE(codes[b * fx.n + t] == want_codes[b * fx.n + t]);
          }
        require_close(valid_rows(session.layer_output(i), fx.n, c.d_model, lengths),
                      valid_rows(read<float>(fx.expected, L + "output"), fx.n, c.d_model, lengths), L + "output");
      }
      require_close(logits, read<float>(fx.expected, "logits"), "class logits");
    }
  }
}

TEST_CASE("language models match the reference in every path", "[parity]") {
  for (const std::string& dir : fixtures("lm_")) {
    SECTION(fs::path(dir).filename().string()) {
      Fixture fx(dir);
      const ModelConfig& c = fx.model->config();
      const int64_t V = c.vocab_size, B = fx.batch, n = fx.n;
      const auto tokens = read<int32_t>(fx.expected, "inputs");
      const auto want_logits = read<float>(fx.expected, "logits");
      const auto want_decode = read<float>(fx.expected, "decode_logits");
      Session session(fx.model, {.max_batch = B, .max_chunk = 16, .max_length = n, .layer_outputs = true});

      // Whole-sequence forward: logits, layers, codes.
      std::vector<int32_t> full(static_cast<size_t>(B), static_cast<int32_t>(n));
      auto fwd = session.forward(tokens, full, n);
      require_close({fwd.begin(), fwd.end()}, want_logits, "forward logits");
      for (int i = 0; i < c.n_layers; ++i) {
        const std::string L = "layers." + std::to_string(i) + ".";
        REQUIRE(session.layer_codes(i) == read<int32_t>(fx.expected, L + "codes"));
        require_close(session.layer_output(i), read<float>(fx.expected, L + "output"), L + "output");
      }

      // Decode, one token per step for all B sequences at once == forward (invariant 2).
      State state = session.new_state(B);
      std::vector<float> steps(static_cast<size_t>(B * n * V));
      for (int64_t t = 0; t < n; ++t) {
        std::vector<int32_t> tok(static_cast<size_t>(B));
        for (int64_t b = 0; b < B; ++b) tok[b] = tokens[b * n + t];
        auto lg = session.decode(state, tok);
        for (int64_t b = 0; b < B; ++b) std::copy_n(lg.begin() + b * V, V, steps.begin() + (b * n + t) * V);
      }
      require_close(steps, want_decode, "decode logits");

      // Prefill of the first p tokens: its state equals the reference's (chunks of 16 inside).
      const int64_t p = read<int32_t>(fx.expected, "prefill_len")[0];
      State pre = session.new_state(B);
      std::vector<int32_t> head;
      for (int64_t b = 0; b < B; ++b) head.insert(head.end(), tokens.begin() + b * n, tokens.begin() + b * n + p);
      session.prefill(pre, head);
      for (const auto& [name, info] : fx.expected.tensors()) {
        if (name.rfind("state.", 0) != 0) continue;
        const TensorRef& mine = pre.tensor(name);
        REQUIRE(mine.nbytes() == info.nbytes);
        if (info.nbytes == 0) continue;  // the empty ring of a window-0 model
        std::vector<char> host(info.nbytes);  // the state may live in device memory
        session.backend().download(host.data(), mine.data, info.nbytes);
        if (info.dtype == FileDType::F32) {
          std::vector<float> got(info.nbytes / 4);
          std::memcpy(got.data(), host.data(), info.nbytes);
          require_close(got, read<float>(fx.expected, name), name);
        } else {
          INFO(name);
          CHECK(std::memcmp(host.data(), info.data, info.nbytes) == 0);
        }
      }

      // Then the rest as one more prefill == forward (invariant 3), and save → restore → continue.
      fs::path state_file = fs::temp_directory_path() / ("longvq_parity_" + fs::path(dir).filename().string() + ".state");
      pre.save(state_file);
      State restored = State::load(state_file, *fx.model, session.backend());
      fs::remove(state_file);
      std::vector<int32_t> tail;
      for (int64_t b = 0; b < B; ++b) tail.insert(tail.end(), tokens.begin() + b * n + p, tokens.begin() + (b + 1) * n);
      auto rest = session.prefill(pre, tail);
      std::vector<float> rest_a(rest.begin(), rest.end());
      auto rest_b = session.prefill(restored, tail);
      CHECK(std::equal(rest_a.begin(), rest_a.end(), rest_b.begin()));  // bit-identical
      std::vector<float> want_tail;
      for (int64_t b = 0; b < B; ++b)
        want_tail.insert(want_tail.end(), want_logits.begin() + (b * n + p) * V, want_logits.begin() + (b + 1) * n * V);
      require_close(rest_a, want_tail, "prefill after prefill");

      // Batched == alone (invariant 4): sequence 1 decoded by itself.
      Session single(fx.model, {.max_batch = 1});
      State one = single.new_state(1);
      std::vector<float> alone;
      for (int64_t t = 0; t < n; ++t) {
        auto lg = single.decode(one, std::vector<int32_t>{tokens[n + t]});
        alone.insert(alone.end(), lg.begin(), lg.end());
      }
      std::vector<float> batched(steps.begin() + n * V, steps.begin() + 2 * n * V);
      require_close(alone, batched, "sequence 1 alone vs in the batch", 1e-6);
    }
  }
}

// On the CPU a position's arithmetic does not depend on the call that computes it: decoded step by
// step, prefilled in uneven chunks or run as one whole-sequence forward, every logit has the same
// bits (linear's GEMV == GEMM, the EMA step == the scan, one code-score and attention arithmetic).
// (CUDA's cuBLAS may round a GEMM and a GEMV differently; there the tolerances above apply.)
TEST_CASE("decode == chunked prefill == forward, bit for bit (CPU)", "[parity]") {
  if (test::backend_under_test() != BackendKind::cpu) return;
  for (const std::string& dir : fixtures("lm_")) {
    INFO(dir);
    const auto model = Model::load(dir, {.backend = BackendKind::cpu});
    const int32_t V = static_cast<int32_t>(model->config().vocab_size), n = 45;
    std::vector<int32_t> tokens;
    for (int32_t i = 0; i < n; ++i) tokens.push_back((i * 7 + 3) % V);
    Session session(model, {.max_length = n});
    const auto f = session.forward(tokens, std::vector<int32_t>{n}, n);
    const std::vector<float> whole(f.begin(), f.end());

    State one = session.new_state(1);
    std::vector<float> steps;
    for (int32_t t : tokens) {
      const auto l = session.decode(one, std::vector<int32_t>{t});
      steps.insert(steps.end(), l.begin(), l.end());
    }
    State pre = session.new_state(1);
    std::vector<float> chunks;
    for (int32_t lo = 0, len = 1; lo < n; lo += len, len = 2 * len + 1) {  // chunks of 1, 3, 7, 15, 19
      const auto l = session.prefill(pre, std::vector<int32_t>(tokens.begin() + lo, tokens.begin() + std::min(n, lo + len)));
      chunks.insert(chunks.end(), l.begin(), l.end());
    }
    REQUIRE(steps.size() == whole.size());
    REQUIRE(chunks.size() == whole.size());
    CHECK(std::memcmp(steps.data(), whole.data(), whole.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(chunks.data(), whole.data(), whole.size() * sizeof(float)) == 0);
  }
}
