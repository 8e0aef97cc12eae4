// Benchmark rows and their three renderings (llama-bench style): markdown table, CSV, JSON.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace longvq::cli {

struct BenchRow {
  // Stamps: what was measured, where and with what.
  std::string build_commit, cpu, backend, model;
  int threads = 0;
  int64_t model_params = 0;
  int64_t weight_bytes = 0;
  int64_t state_bytes = 0;   // decoding state per sequence (0 for classifiers: they keep none)
  int64_t arena_bytes = 0;   // the planned arena of the graph this test runs
  // The test.
  std::string test;          // "pp512", "tg128 @ d4096", "cls784 b16"
  std::string unit;          // "t/s" (tokens) or "seq/s" (sequences)
  int64_t n_prompt = 0, n_gen = 0, n_depth = 0, batch = 1, length = 0;
  int repetitions = 0, warmup = 0;
  std::vector<int64_t> samples_ns;  // one per repetition
  std::vector<double> samples_rate; // units per second, one per repetition
  double items = 0;                 // units per repetition (tokens or sequences)

  double avg_ns() const;
  double stddev_ns() const;
  double avg_rate() const;
  double stddev_rate() const;
};

void write_markdown(std::ostream& out, const std::vector<BenchRow>& rows);
void write_csv(std::ostream& out, const std::vector<BenchRow>& rows);
void write_json(std::ostream& out, const std::vector<BenchRow>& rows);

}  // namespace longvq::cli
