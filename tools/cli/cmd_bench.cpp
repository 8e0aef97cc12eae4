// longvq bench: throughput in the manner of llama-bench. For causal LMs: prefill (pp N) and
// decode (tg N @ depth d: the state is first filled with d tokens, then N decode steps are
// timed; the state has a fixed size, so the cost per token must not grow with d). For
// classifiers: sequences per second at each length. Warmup runs, repetitions, mean ± stddev,
// raw samples, markdown / CSV / JSON.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "engine/longvq.h"
#include "tools/cli/bench_report.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/stats.h"
#include "tools/cli/system_info.h"

namespace longvq::cli {

namespace {

struct BenchOptions {
  ModelFlags model;
  std::vector<int> threads;
  std::vector<int64_t> n_prompt = {512};
  std::vector<int64_t> n_gen = {128};
  std::vector<int64_t> depth = {0, 4096};
  std::vector<int64_t> classify_lengths = {784, 2000};
  int64_t batch = 16;
  std::vector<int64_t> decode_batch = {1};
  int repetitions = 5;
  int warmup = 1;
  std::string output = "md";
  int64_t chunk = 512;
  uint64_t seed = 1234;
};

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, std::mt19937_64& rng) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

// Row 0 of `state` consumes `tokens` (the session chunks them; only the last logits are kept).
void prefill(Session& s, State& state, std::span<const int32_t> tokens) {
  const std::vector<RowTokens> rows = {{0, tokens}};
  s.prefill(state, rows);
}

// Runs fn warmup + reps times; records the timed reps (fn returns its own measured ns).
template <typename F>
void measure(BenchRow& row, const BenchOptions& o, F fn) {
  for (int i = 0; i < o.warmup; ++i) fn();
  for (int i = 0; i < o.repetitions; ++i) {
    const int64_t ns = fn();
    row.samples_ns.push_back(ns);
    row.samples_rate.push_back(row.items * 1e9 / static_cast<double>(std::max<int64_t>(ns, 1)));
  }
}

void note(const std::string& s) {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "%s\n", s.c_str());
}

std::vector<BenchRow> bench_one(const BenchOptions& o, const std::shared_ptr<const Model>& model, int threads) {
  const ModelConfig& cfg = model->config();
  BenchRow stamp;
  stamp.build_commit = std::string(build_commit());
  stamp.cpu = cpu_model();
  stamp.backend = backend_kind_name(model->options().backend);
  stamp.model = model->dir().filename().empty() ? model->dir().parent_path().filename().string()
                                                : model->dir().filename().string();
  stamp.threads = effective_threads(threads);
  stamp.model_params = model->parameter_count();
  stamp.weight_bytes = static_cast<int64_t>(model->weight_bytes());
  stamp.repetitions = o.repetitions;
  stamp.warmup = o.warmup;
  std::mt19937_64 rng(o.seed);
  std::vector<BenchRow> rows;
  std::string plans;

  if (cfg.task == ModelConfig::Task::lm) {
    check_activation_memory(cfg, 1, o.chunk, "--chunk " + group_digits(o.chunk));
    const int64_t max_b = *std::max_element(o.decode_batch.begin(), o.decode_batch.end());
    SessionOptions so;
    so.max_batch = max_b;
    so.max_chunk = o.chunk;
    so.threads = threads;
    Session session(model, so);
    State state = session.new_state(1);
    stamp.state_bytes = static_cast<int64_t>(state.bytes_per_sequence());
    const int64_t V = cfg.vocab_size;
    for (int64_t n : o.n_prompt) {
      BenchRow r = stamp;
      r.test = "pp" + std::to_string(n);
      r.unit = "t/s";
      r.n_prompt = n;
      r.items = static_cast<double>(n);
      r.arena_bytes = static_cast<int64_t>(plan_for(*model, GraphKind::prefill, max_b, o.chunk).arena_bytes);
      note("bench: " + r.test);
      const std::vector<int32_t> tokens = random_tokens(n, V, rng);
      measure(r, o, [&] {
        state.reset();
        const int64_t t = now_ns();
        prefill(session, state, tokens);
        return now_ns() - t;
      });
      rows.push_back(std::move(r));
    }
    // A state holds at most kMaxStatePosition tokens: refused before filling it for minutes.
    for (int64_t d : o.depth)
      for (int64_t n : o.n_gen)
        if (d + n > kMaxStatePosition)
          throw UsageError("-d " + group_digits(d) + " with -n " + group_digits(n) + " passes the longest context a "
                           "state holds (" + group_digits(kMaxStatePosition) + " tokens): lower -d or -n");
    for (int64_t d : o.depth) {
      // Fill a state to depth d once (O(d)); every repetition starts each of its rows from a copy
      // of it (a row copy: the state's size does not depend on d, so neither does the copy).
      State filled = session.new_state(1);
      if (d > 0) {
        note("bench: filling the state to depth " + std::to_string(d));
        prefill(session, filled, random_tokens(d, V, rng));
      }
      for (int64_t b : o.decode_batch)
        for (int64_t n : o.n_gen) {
          BenchRow r = stamp;
          r.test = "tg" + std::to_string(n) + (b > 1 ? " b" + std::to_string(b) : "") +
                   (d > 0 ? " @ d" + std::to_string(d) : "");
          r.unit = "t/s";
          r.n_gen = n;
          r.n_depth = d;
          r.batch = b;
          r.items = static_cast<double>(n * b);
          r.arena_bytes = static_cast<int64_t>(plan_for(*model, GraphKind::decode, b, 1).arena_bytes);
          note("bench: " + r.test);
          State batch = session.new_state(b);
          const std::vector<int32_t> tokens = random_tokens(n * b, V, rng);
          measure(r, o, [&] {
            for (int64_t row = 0; row < b; ++row) batch.set_row(row, filled, 0);
            const int64_t t = now_ns();
            for (int64_t i = 0; i < n; ++i)
              session.decode(batch, std::span(tokens).subspan(static_cast<size_t>(i * b), static_cast<size_t>(b)));
            return now_ns() - t;
          });
          rows.push_back(std::move(r));
        }
    }
    plans = session.describe_plans();
  } else {
    const bool real = cfg.embedding.kind == EmbeddingConfig::Kind::real;
    for (int64_t len : o.classify_lengths) {
      check_activation_memory(cfg, o.batch, len, "--classify-lengths " + group_digits(len) + " with -b " + group_digits(o.batch));
      SessionOptions so;
      so.max_batch = o.batch;
      so.max_length = len;
      so.threads = threads;
      Session session(model, so);
      BenchRow r = stamp;
      r.test = "cls" + std::to_string(len) + " b" + std::to_string(o.batch);
      r.unit = "seq/s";
      r.batch = o.batch;
      r.length = len;
      r.items = static_cast<double>(o.batch);
      r.arena_bytes = static_cast<int64_t>(plan_for(*model, GraphKind::sequence, o.batch, len).arena_bytes);
      note("bench: " + r.test);
      const std::vector<int32_t> lengths(static_cast<size_t>(o.batch), static_cast<int32_t>(len));
      std::vector<int32_t> tokens;
      std::vector<float> values;
      if (real) {
        std::normal_distribution<float> normal;
        values.resize(static_cast<size_t>(o.batch * len));
        for (float& v : values) v = normal(rng);
      } else {
        tokens = random_tokens(o.batch * len, cfg.vocab_size, rng);
      }
      measure(r, o, [&] {
        const int64_t t = now_ns();
        if (real) session.forward(values, lengths, len);
        else session.forward(tokens, lengths, len);
        return now_ns() - t;
      });
      rows.push_back(std::move(r));
      plans += session.describe_plans();
    }
  }
  if (o.model.verbose) std::fprintf(stderr, "%s", plans.c_str());
  return rows;
}

int run_bench(BenchOptions o) {
  if (o.threads.empty()) o.threads = {0};
  const auto model = load_model(o.model);  // shared: each thread count is a session of its own
  std::vector<BenchRow> rows;
  for (int t : o.threads) {
    std::vector<BenchRow> r = bench_one(o, model, t);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  if (o.output == "csv") write_csv(std::cout, rows);
  else if (o.output == "json") write_json(std::cout, rows);
  else write_markdown(std::cout, rows);
  return kExitOk;
}

}  // namespace

Command add_bench(CLI::App& root) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* app = root.add_subcommand("bench", "Measure prefill, decode (at several context depths) and "
                                               "classification throughput, llama-bench style");
  app->description(app->get_description() + ".\n\n" +
      "Benchmark a model. Causal LMs: prefill of N random tokens (pp N) and decode of N tokens after a context of\n"
      "d tokens (tg N @ dD; the state is filled to depth d once, untimed, and every repetition restarts from a\n"
      "copy: decode cost stays flat in d because the state has a fixed size), by --decode-batch rows at once. Classifiers: sequences per second\n"
      "for batches of -b random sequences of each --classify-lengths length. Each test runs --warmup untimed\n"
      "times, then -r timed repetitions: mean ± sample stddev, raw samples in JSON. Every row is stamped with\n"
      "the build commit, CPU, threads, parameters, weight bytes, state bytes per sequence and the planned arena\n"
      "bytes of the graph the test runs. Lists are comma-separated: -p 512,4096.");
  add_model_flags(*app, o->model);
  // bench takes a list of thread counts instead of the common single -t.
  app->remove_option(app->get_option("--threads"));
  app->add_option("-t,--threads", o->threads, "Thread counts to run, e.g. 1,2; 0 = all cores (default)")
      ->delimiter(',')->type_name("LIST")->check(integer_in(0, kMaxThreads));
  app->add_option("-p,--n-prompt", o->n_prompt, "Prefill sizes (LMs)")
      ->capture_default_str()->delimiter(',')->type_name("LIST")->check(integer_in(1, kMaxSize));
  app->add_option("-n,--n-gen", o->n_gen, "Decode lengths (LMs)")
      ->capture_default_str()->delimiter(',')->type_name("LIST")->check(integer_in(1, kMaxSize));
  app->add_option("-d,--depth", o->depth, "Context depths for decode (LMs); 65536 works too, it only takes longer "
                                          "to fill the state once")
      ->capture_default_str()->delimiter(',')->type_name("LIST")->check(integer_in(0, kMaxSize));
  app->add_option("--classify-lengths", o->classify_lengths, "Sequence lengths for classifiers")
      ->capture_default_str()->delimiter(',')->type_name("LIST")->check(integer_in(1, kMaxSize));
  app->add_option("-b,--batch", o->batch, "Sequences per batch for classifiers")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_option("--decode-batch", o->decode_batch, "Sequences decoding together (LMs; rows of one state, as "
                                                     "`longvq serve` runs them): tg N bB counts N × B tokens")
      ->capture_default_str()->delimiter(',')->type_name("LIST")->check(integer_in(1, 65536));
  app->add_option("-r,--repetitions", o->repetitions, "Timed repetitions per test")
      ->capture_default_str()->check(integer_in(1, 1'000'000));
  app->add_option("--warmup", o->warmup, "Untimed runs before the repetitions")
      ->capture_default_str()->check(integer_in(0, 1'000'000));
  app->add_option("-o,--output", o->output, "Output format: md, csv or json")
      ->capture_default_str()->check(CLI::IsMember({"md", "csv", "json"}));
  app->add_option("--chunk", o->chunk, "Prompt tokens per prefill graph run")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->footer(
      "Examples:\n"
      "  longvq bench                                   # default model: pp512, tg128 at depths 0 and 4096\n"
      "  longvq bench -p 512,4096 -n 128 -d 0,4096,65536 -r 3 -o json > bench.json\n"
      "  longvq bench -p 16 -n 64 -d 0 --decode-batch 1,16,64       # batched decode, as the server runs\n"
      "  longvq bench -m models/fashion-seq --classify-lengths 784 -b 32 -t 1,2 -o csv");
  return {app, [o] { return run_bench(*o); }};
}

}  // namespace longvq::cli
