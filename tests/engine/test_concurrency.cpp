// One Model shared read-only by many threads, each with its own Session and State: every
// thread's results are bit-identical to the same work run alone (engine/longvq.h promises this).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/longvq.h"
#include "tests/backend_under_test.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

const fs::path kFix = LONGVQ_FIXTURES_DIR;

// Prefill of a prompt that depends on `seed`, then 24 greedy decode steps: every logit.
std::vector<float> lm_work(const std::shared_ptr<const Model>& model, int seed, int threads) {
  Session session(model, {.max_batch = 1, .max_chunk = 8, .threads = threads});
  State state = session.new_state(1);
  const int64_t V = model->config().vocab_size;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 13 + seed; ++i) prompt.push_back(static_cast<int32_t>((i * 7 + seed * 3) % V));
  std::vector<float> all;
  auto logits = session.prefill(state, prompt);
  all.assign(logits.begin(), logits.end());
  int32_t next = 0;
  for (int step = 0; step < 24; ++step) {
    const float* last = all.data() + all.size() - V;
    next = static_cast<int32_t>(std::max_element(last, last + V) - last);
    auto lg = session.decode(state, std::span<const int32_t>(&next, 1));
    all.insert(all.end(), lg.begin(), lg.end());
  }
  return all;
}

// A batch of 3 right-padded token sequences whose content depends on `seed`: class logits.
std::vector<float> classify_work(const std::shared_ptr<const Model>& model, int seed, int threads) {
  Session session(model, {.max_batch = 3, .max_length = 40, .threads = threads});
  const int64_t V = model->config().vocab_size, n = 40;
  std::vector<int32_t> tokens(3 * n);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 5 + seed) % V);
  const std::vector<int32_t> lengths = {40, 17 + seed % 5, 3};
  auto out = session.forward(tokens, lengths, n);
  return {out.begin(), out.end()};
}

template <class Work>
void check_threads_equal_alone(const fs::path& dir, Work work, int threads_per_session) {
  auto model = Model::load(dir, ModelOptions{.backend = test::backend_under_test()});
  constexpr int kThreads = 6;
  std::vector<std::vector<float>> alone(kThreads), together(kThreads);
  for (int t = 0; t < kThreads; ++t) alone[t] = work(model, t, threads_per_session);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) pool.emplace_back([&, t] { together[t] = work(model, t, threads_per_session); });
  for (std::thread& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO(dir.filename() << " thread " << t);
    REQUIRE(!alone[t].empty());
    CHECK(together[t] == alone[t]);  // bit for bit
  }
}

}  // namespace

// [tsan]: one CPU thread per session, so no OpenMP team runs (libgomp is not instrumented for
// ThreadSanitizer); tools/sanitize.sh tsan runs these.
TEST_CASE("many threads share one LM, each with its own state: same as alone", "[concurrency][tsan]") {
  check_threads_equal_alone(kFix / "lm_bytes_layernorm_tied", lm_work, 1);
  check_threads_equal_alone(kFix / "lm_rmsnorm_postnorm_untied", lm_work, 1);
}

TEST_CASE("many threads share one classifier: same as alone", "[concurrency][tsan]") {
  check_threads_equal_alone(kFix / "cls_batchnorm_tokens", classify_work, 1);
}

TEST_CASE("many threads share one model, each session with two CPU threads: same as alone", "[concurrency]") {
  check_threads_equal_alone(kFix / "lm_bytes_layernorm_tied", lm_work, 2);
  check_threads_equal_alone(kFix / "cls_batchnorm_tokens", classify_work, 2);
}
