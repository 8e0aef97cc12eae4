// Independent rows in one batched State (the base of continuous batching): sequences join, prefill
// in uneven chunks beside each other, decode in any subsets, are copied out, saved, restored
// into another row and leave, on a seeded random schedule; every logit of every sequence must
// be bit-identical to that sequence run alone in a 1-row state (CPU: every instruction set, 1 and
// 2 threads). Rows that do not step are checked to keep every byte. Plus the misuse refusals.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "engine/runtime/state_layout.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/backend_under_test.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

const fs::path kFix = LONGVQ_FIXTURES_DIR;

bool on_cuda() { return test::backend_under_test() == BackendKind::cuda; }

// Every byte of one row of a state, in layout order.
std::vector<char> row_bytes(Session& session, const State& state, int64_t row) {
  std::vector<char> out;
  for (const StateTensor& t : state_layout(state.model().config())) {
    const TensorRef& ref = state.tensor(t.name);
    const size_t bytes = ref.nbytes() / static_cast<size_t>(state.rows());
    const size_t at = out.size();
    out.resize(at + bytes);
    session.backend().download(out.data() + at, static_cast<const char*>(ref.data) + row * bytes, bytes);
  }
  return out;
}

// One sequence: its tokens, the first `prompt` of them prefilled, the rest decoded (teacher
// forcing: the next given token is fed, so the logits of every position are defined).
struct Sequence {
  std::vector<int32_t> tokens;
  size_t prompt = 0;
  std::vector<float> logits;  // [tokens × V], position by position
};

// The sequence alone in a 1-row state: the prompt in one prefill, then one decode per token.
std::vector<float> run_alone(Session& session, const Sequence& s, int64_t V) {
  State state = session.new_state(1);
  std::vector<float> all;
  auto p = session.prefill(state, std::span<const int32_t>(s.tokens.data(), s.prompt));
  all.assign(p.begin(), p.end());
  for (size_t i = s.prompt; i < s.tokens.size(); ++i) {
    auto d = session.decode(state, std::span<const int32_t>(&s.tokens[i], 1));
    all.insert(all.end(), d.begin(), d.end());
  }
  REQUIRE(all.size() == s.tokens.size() * static_cast<size_t>(V));
  return all;
}

// Where a sequence is: waiting to join, in a row (prefilling or decoding), parked in a file
// (saved, its row freed), or done.
struct Live {
  int64_t row = -1;
  size_t done = 0;  // tokens consumed
  std::optional<fs::path> parked;
  bool finished = false;
};

// Runs `seqs` on the schedule `seed` picks in a State of `rows` rows (fewer than sequences: rows
// are reused); fills each sequence's logits. Checks that rows that do not step keep every byte.
void run_schedule(Session& session, std::vector<Sequence>& seqs, int64_t rows, uint32_t seed, const fs::path& tmp) {
  const int64_t V = session.model().config().vocab_size;
  std::mt19937 rng(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  State state = session.new_state(rows);
  std::vector<bool> busy(static_cast<size_t>(rows), false);
  std::vector<Live> live(seqs.size());
  size_t finished = 0, parks = 0, copies = 0, joins = 0;
  auto free_row = [&]() -> int64_t {
    std::vector<int64_t> free;
    for (int64_t r = 0; r < rows; ++r)
      if (!busy[static_cast<size_t>(r)]) free.push_back(r);
    if (free.empty()) return -1;
    return free[std::uniform_int_distribution<size_t>(0, free.size() - 1)(rng)];
  };
  auto append = [&](size_t i, std::span<const float> logits) {
    seqs[i].logits.insert(seqs[i].logits.end(), logits.begin(), logits.end());
  };
  // Runs `step` and checks that the rows it does not name keep their bytes.
  auto guarded = [&](const std::vector<int64_t>& stepping, auto step) {
    std::vector<std::pair<int64_t, std::vector<char>>> idle;
    for (int64_t r = 0; r < rows; ++r)
      if (busy[static_cast<size_t>(r)] && std::find(stepping.begin(), stepping.end(), r) == stepping.end())
        idle.emplace_back(r, row_bytes(session, state, r));
    step();
    for (const auto& [r, bytes] : idle)
      if (row_bytes(session, state, r) != bytes) FAIL_CHECK("row " << r << " changed although it did not step");
  };

  for (int round = 0; finished < seqs.size(); ++round) {
    REQUIRE(round < 10000);
    for (size_t i = 0; i < seqs.size(); ++i) {  // join (a new sequence or a parked one) into a free row
      Live& l = live[i];
      if (l.finished || l.row >= 0 || !chance(0.5)) continue;
      const int64_t r = free_row();
      if (r < 0) break;
      busy[static_cast<size_t>(r)] = true;
      l.row = r;
      if (l.parked) {
        state.load_row(*l.parked, r);  // restored into whatever row is free now
        CHECK(state.positions()[static_cast<size_t>(r)] == static_cast<int64_t>(l.done));
        l.parked.reset();
      } else {
        state.reset(r);
        ++joins;
      }
    }
    // Prefill: some of the rows still in their prompt, each with its own uneven chunk.
    std::vector<RowTokens> pre;
    std::vector<size_t> pre_seq;
    std::vector<int64_t> stepping;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const Live& l = live[i];
      if (l.row < 0 || l.done >= seqs[i].prompt || !chance(0.7)) continue;
      const size_t left = seqs[i].prompt - l.done;
      const size_t n = std::uniform_int_distribution<size_t>(1, left)(rng);
      pre.push_back({l.row, std::span<const int32_t>(seqs[i].tokens.data() + l.done, n)});
      pre_seq.push_back(i);
      stepping.push_back(l.row);
    }
    if (!pre.empty())
      guarded(stepping, [&] {
        std::vector<std::vector<float>> got(pre.size());
        auto last = session.prefill(state, pre, [&](size_t k, int64_t offset, std::span<const float> logits) {
          CHECK(static_cast<size_t>(offset) * V == got[k].size());
          got[k].insert(got[k].end(), logits.begin(), logits.end());
        });
        for (size_t k = 0; k < pre.size(); ++k) {
          REQUIRE(got[k].size() == pre[k].tokens.size() * static_cast<size_t>(V));
          CHECK(std::equal(last.begin() + static_cast<int64_t>(k) * V, last.begin() + static_cast<int64_t>(k + 1) * V,
                           got[k].end() - V));  // the last position, as the sink saw it
          append(pre_seq[k], got[k]);
          live[pre_seq[k]].done += pre[k].tokens.size();
        }
      });
    // Decode: a random subset of the rows past their prompt, at most max_batch.
    std::vector<int32_t> rows_now, tokens_now;
    std::vector<size_t> dec_seq;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const Live& l = live[i];
      if (l.row < 0 || l.done < seqs[i].prompt || l.done >= seqs[i].tokens.size() || !chance(0.6)) continue;
      if (static_cast<int64_t>(rows_now.size()) == session.options().max_batch) break;
      rows_now.push_back(static_cast<int32_t>(l.row));
      tokens_now.push_back(seqs[i].tokens[l.done]);
      dec_seq.push_back(i);
    }
    if (!rows_now.empty())
      guarded(std::vector<int64_t>(rows_now.begin(), rows_now.end()), [&] {
        auto logits = session.decode(state, rows_now, tokens_now);
        REQUIRE(logits.size() == rows_now.size() * static_cast<size_t>(V));
        for (size_t k = 0; k < dec_seq.size(); ++k) {
          append(dec_seq[k], logits.subspan(k * static_cast<size_t>(V), static_cast<size_t>(V)));
          ++live[dec_seq[k]].done;
        }
      });
    // Leave, park, or copy out and back.
    for (size_t i = 0; i < seqs.size(); ++i) {
      Live& l = live[i];
      if (l.row < 0) continue;
      if (l.done == seqs[i].tokens.size()) {  // finished: leaves its row
        busy[static_cast<size_t>(l.row)] = false;
        l.row = -1;
        l.finished = true;
        ++finished;
      } else if (chance(0.15)) {  // parked in a file; the row is free for others
        l.parked = tmp / ("seq" + std::to_string(i) + "_" + std::to_string(parks++) + ".state");
        state.save_row(*l.parked, l.row);
        busy[static_cast<size_t>(l.row)] = false;
        l.row = -1;
      } else if (chance(0.15)) {  // copied out, the row reset, copied back in
        State one = state.copy_row(l.row);
        CHECK(one.rows() == 1);
        state.reset(l.row);
        state.set_row(l.row, one, 0);
        ++copies;
      }
    }
  }
  INFO(joins << " joins, " << parks << " parks, " << copies << " copies");
  CHECK(parks > 0);
  CHECK(copies > 0);
}

// Compares a schedule's logits with the alone run: bit for bit on the CPU; on CUDA to 1e-5 of
// the logit scale (cuBLAS may sum in another order for another batch size; tools/gpu_check.sh
// reports whether it does).
void compare(const std::vector<float>& got, const std::vector<float>& alone, const std::string& what) {
  REQUIRE(got.size() == alone.size());
  if (!on_cuda()) {
    for (size_t i = 0; i < got.size(); ++i)
      if (std::memcmp(&got[i], &alone[i], sizeof(float)) != 0) {
        FAIL_CHECK(what << ": logit " << i << " is " << got[i] << " batched but " << alone[i] << " alone");
        return;
      }
    return;
  }
  double scale = 1, worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(alone[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - alone[i]));
  }
  INFO(what << ": max |batched − alone| " << worst);
  CHECK(worst <= 1e-5 * scale);
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / (name + std::to_string(getpid()))) {
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("independent rows: a random schedule of 10 sequences == each alone, bit for bit", "[rows]") {
  TempDir tmp("longvq_rows_");
  const std::vector<std::string> models = {"lm_bytes_layernorm_tied", "lm_rmsnorm_postnorm_untied",
                                           "lm_scalenorm_w0_s1", "lm_bigwindow_unused_codes", "lm_bf16_matrices"};
  std::vector<CpuIsa> isas = {cpu_isa()};
  if (!on_cuda()) {
    const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
    isas.clear();
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512})
      if (isa <= best) isas.push_back(isa);
  }
  uint32_t seed = 1;
  for (const std::string& name : models) {
    auto model = Model::load(kFix / name, {.backend = test::backend_under_test()});
    const int64_t V = model->config().vocab_size;
    for (CpuIsa isa : isas)
      for (int threads : {1, 2}) {
        if (!on_cuda()) cpu_force_isa(isa);
        const std::string where = name + " " + (on_cuda() ? "cuda" : cpu_isa_name(isa)) + " threads=" +
                                  std::to_string(threads);
        INFO(where);
        std::mt19937 rng(seed++);
        std::vector<Sequence> seqs(10);
        for (Sequence& s : seqs) {  // lengths 2..40 (window crossings: W is 4..16 in the fixtures)
          const size_t len = std::uniform_int_distribution<size_t>(2, 40)(rng);
          for (size_t i = 0; i < len; ++i) s.tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(V)));
          s.prompt = std::uniform_int_distribution<size_t>(1, len - 1)(rng);
        }
        Session alone(model, {.max_batch = 1, .max_chunk = 64, .threads = threads});
        std::vector<std::vector<float>> expected;
        for (const Sequence& s : seqs) expected.push_back(run_alone(alone, s, V));
        // max_chunk 5: long prompts are also chunked inside one prefill call; max_batch 3 < rows.
        Session batched(model, {.max_batch = 3, .max_chunk = 5, .threads = threads});
        run_schedule(batched, seqs, 6, seed * 7919u, tmp.path);
        for (size_t i = 0; i < seqs.size(); ++i) compare(seqs[i].logits, expected[i], where + " sequence " + std::to_string(i));
      }
  }
  if (!on_cuda()) cpu_force_isa(CpuIsa::avx512);
}

TEST_CASE("independent rows: misuse is a clear error", "[rows]") {
  auto model = Model::load(kFix / "lm_bytes_layernorm_tied", {.backend = test::backend_under_test()});
  Session session(model, {.max_batch = 2, .max_chunk = 8});
  State state = session.new_state(4);
  const std::vector<int32_t> one = {1}, two = {1, 2}, three = {1, 2, 3};
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::vector<int32_t> r4 = {4}, rneg = {-1}, r11 = {1, 1}, r012 = {0, 1, 2};
  CHECK_THAT(message([&] { session.decode(state, r4, one); }), Catch::Contains("row 4 is outside the state's rows 0..3"));
  CHECK_THAT(message([&] { session.decode(state, rneg, one); }), Catch::Contains("row -1 is outside"));
  CHECK_THAT(message([&] { session.decode(state, r11, two); }), Catch::Contains("row 1 is listed twice"));
  CHECK_THAT(message([&] { session.decode(state, r012, three); }), Catch::Contains("at most 2 (raise max_batch)"));
  CHECK_THAT(message([&] { session.decode(state, r11, one); }), Catch::Contains("2 rows but 1 tokens"));
  CHECK_THAT(message([&] { session.decode(state, one); }), Catch::Contains("4 expected, 1 given"));
  const std::vector<int32_t> none;
  CHECK_THAT(message([&] { session.decode(state, none, none); }), Catch::Contains("no rows given"));
  const std::vector<RowTokens> empty_row = {{0, {}}};
  CHECK_THAT(message([&] { session.prefill(state, empty_row); }), Catch::Contains("row 0 has no tokens"));
  const std::vector<RowTokens> far_row = {{9, one}};
  CHECK_THAT(message([&] { session.prefill(state, far_row); }), Catch::Contains("row 9 is outside"));
  const std::vector<RowTokens> twice = {{2, one}, {2, two}};
  CHECK_THAT(message([&] { session.prefill(state, twice); }), Catch::Contains("row 2 is listed twice"));
  const std::vector<int32_t> bad_token = {static_cast<int32_t>(model->config().vocab_size)};
  const std::vector<RowTokens> bad = {{0, bad_token}};
  CHECK_THAT(message([&] { session.prefill(state, bad); }), Catch::Contains("outside the vocabulary"));
  CHECK_THAT(message([&] { state.reset(4); }), Catch::Contains("row 4 is outside"));
  CHECK_THAT(message([&] { (void)state.copy_row(-2); }), Catch::Contains("row -2 is outside"));
  // A State of another Model object (even the same files) and one of another configuration.
  auto again = Model::load(kFix / "lm_bytes_layernorm_tied", {.backend = test::backend_under_test()});
  Session other(again, {.max_batch = 2});
  State foreign = other.new_state(2);
  CHECK_THAT(message([&] { session.decode(foreign, two); }), Catch::Contains("made for another Model"));
  state.set_row(0, foreign, 1);  // same configuration: rows may be copied across
  auto different = Model::load(kFix / "lm_rmsnorm_postnorm_untied", {.backend = test::backend_under_test()});
  Session diff_session(different, {.max_batch = 1});
  State diff = diff_session.new_state(1);
  CHECK_THAT(message([&] { state.set_row(0, diff, 0); }), Catch::Contains("belongs to another model"));
  // load_row takes a file of one sequence.
  TempDir tmp("longvq_rows_misuse_");
  state.save(tmp.path / "four.state");
  CHECK_THAT(message([&] { state.load_row(tmp.path / "four.state", 0); }), Catch::Contains("holds 4 sequences"));
}

// Not a test (hidden; run `test_engine "[.perf]"`): what idle rows cost. A decode step of 1 row in
// a 64-row state against the same step in a 1-row state, on the shipped default model.
TEST_CASE("perf: 1 active row of a 64-row state vs a 1-row state", "[.perf]") {
  auto model = Model::load(fs::path(LONGVQ_SOURCE_DIR) / "models/austen-lm", {.backend = test::backend_under_test()});
  Session session(model, {.max_batch = 64, .threads = 1});
  auto time_steps = [&](State& state, int32_t row) {
    const std::vector<int32_t> rows = {row}, token = {65};
    for (int i = 0; i < 200; ++i) session.decode(state, rows, token);
    const auto t0 = std::chrono::steady_clock::now();
    constexpr int kSteps = 2000;
    for (int i = 0; i < kSteps; ++i) session.decode(state, rows, token);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kSteps;
  };
  for (int rep = 0; rep < 3; ++rep) {
    State small = session.new_state(1), big = session.new_state(64);
    const double us_small = time_steps(small, 0), us_big = time_steps(big, 37);
    std::printf("decode step, 1 thread: 1-row state %.1f us, row 37 of a 64-row state %.1f us (%.3fx)\n", us_small,
                us_big, us_big / us_small);
  }
}
