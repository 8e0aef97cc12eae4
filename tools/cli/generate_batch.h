// `longvq generate --prompts FILE.jsonl`: many prompts as one continuous batch through the
// serving library's Scheduler (what `longvq serve` runs), one JSONL result per prompt in input
// order, written as soon as the results before it are done.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/serving/sampler.h"
#include "tools/cli/common.h"

namespace longvq::cli {

struct BatchOptions {
  ModelFlags model;
  std::string prompts;  // FILE.jsonl ('-' = stdin)
  std::string output;   // "" = stdout
  int64_t parallel = 8;
  int64_t chunk = 512;
  int64_t max_tokens = 200;  // defaults for lines that do not say
  SamplerParams sampling;
  int64_t seed = -1;         // a line's seed, else this + the line's index, else random
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int logprobs = -1;
  int64_t max_prompt = int64_t{1} << 24;
  int64_t max_input_bytes = 0;
};

int run_generate_batch(const BatchOptions& o);

}  // namespace longvq::cli
