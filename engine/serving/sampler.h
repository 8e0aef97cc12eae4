// Next-token sampling (the CLI, the server and the binding share it), in llama.cpp's order:
//
//   repetition penalty over the last N tokens  → greedy argmax when temperature is 0, else
//   top-k → top-p → min-p (on the temperature-1 distribution) → temperature → one draw.
//
// Deterministic: candidates are ordered by logit, ties by token id; the draw is a plain inverse
// CDF (walk the cumulative probabilities until they pass u) with u in [0, 1) made from 53 bits
// of one std::mt19937_64 output, so a seed gives the same tokens on every machine.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace longvq {

struct SamplerParams {
  double temperature = 0.8;     // 0 = greedy
  int top_k = 40;               // keep the k most likely; 0 = all
  double top_p = 0.95;          // keep the smallest set whose probability reaches p; 1 = off
  double min_p = 0.05;          // drop tokens below min_p × the top probability; 0 = off
  double repeat_penalty = 1.0;  // > 1 discourages tokens seen in the last repeat_last_n; 1 = off
  int repeat_last_n = 64;       // how many recent tokens the penalty looks at; 0 = off
  uint64_t seed = 0;
};

struct Candidate {
  int32_t id;
  double p;
};

// u in [0, 1) from the top 53 bits of one draw.
double uniform01(std::mt19937_64& rng);

// Index of the first largest value.
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);

  const SamplerParams& params() const { return params_; }

  // Records a token of the context (prompt or generated) for the repetition penalty.
  void accept(int32_t token);
  // The next token for these logits [V]. Does not record it: call accept().
  int32_t sample(std::span<const float> logits);

  // The logits after the repetition penalty.
  std::vector<float> penalized(std::span<const float> logits) const;
  // The distribution sample() draws from (temperature > 0): surviving tokens, most likely first,
  // probabilities summing to 1.
  std::vector<Candidate> distribution(std::span<const float> logits) const;

 private:
  SamplerParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
};

}  // namespace longvq
