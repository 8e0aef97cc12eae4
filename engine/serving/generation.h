// One sequence's generation, shared by `longvq generate`, the server's scheduler and the Python
// binding: given the logits after the last consumed token it samples the next one, turns it
// into text (stop strings, UTF-8 held back by TextStream), computes log-probabilities when asked
// and decides when to stop: `<eos>` (when the model has one), a stop string, or max_tokens.
//
// The token it last sampled is the *pending* token: the state has not consumed it yet. Feeding
// it (decode) gives the logits for the next step, and a saved context keeps it beside the state
// (so a continuation is exactly the continuation of a run that never stopped).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/serving/sampler.h"
#include "engine/serving/text_stream.h"
#include "engine/text/tokenizer.h"

namespace longvq {

struct GenerationParams {
  SamplerParams sampling;
  int64_t max_tokens = 16;         // tokens to sample at most
  std::vector<std::string> stop;   // stop strings (the text before the first one is kept)
  bool stop_at_eos = true;         // stop when the model samples its <eos> (not shown as text)
  int logprobs = -1;               // -1: none; 0: the sampled token's; K: also the K most likely
  bool utf8 = true;                // emit whole UTF-8 characters only (JSON); raw bytes otherwise
};

enum class FinishReason { none, stop, length, cancelled, timeout, error };
const char* finish_reason_name(FinishReason);

// A token and its log-probabilities under the model's distribution (log-softmax of the raw
// logits: temperature 1, no penalty, as OpenAI reports them).
struct TokenInfo {
  int32_t id = 0;
  std::string piece;  // its bytes
  double logprob = 0;
  std::vector<std::pair<int32_t, double>> top;  // the most likely tokens, most likely first
};

// The text a generated token adds: its bytes (a vocab model's words each get a leading space).
std::string token_piece(const Tokenizer& tok, int32_t id);

// log-softmax of `logits` at `id`, and the top-k (ties: lower id first).
TokenInfo token_info(const Tokenizer& tok, std::span<const float> logits, int32_t id, int top_k);

class Generation {
 public:
  Generation(const Tokenizer& tok, GenerationParams params, std::optional<int32_t> eos);

  // Tokens of the context before the first step (recent ones matter: the repetition penalty).
  void accept_context(std::span<const int32_t> tokens);

  struct Step {
    TokenInfo token;   // what was sampled
    std::string text;  // text that became safe to show (may be empty)
    bool finished = false;
  };
  // Samples from the logits after the last consumed token. Not callable once finished().
  Step step(std::span<const float> logits);
  // Ends early (cancelled, timeout, error): returns what was held back.
  std::string finish(FinishReason reason);

  bool finished() const { return reason_ != FinishReason::none; }
  FinishReason reason() const { return reason_; }
  int64_t generated() const { return generated_; }
  std::optional<int32_t> pending() const { return pending_; }
  const std::string& text() const { return text_; }  // everything shown so far
  const std::vector<int32_t>& recent() const { return recent_; }  // the latest context tokens

 private:
  void remember(int32_t token);

  const Tokenizer& tok_;
  GenerationParams params_;
  std::optional<int32_t> eos_;
  Sampler sampler_;
  TextStream stream_;
  FinishReason reason_ = FinishReason::none;
  int64_t generated_ = 0;
  std::optional<int32_t> pending_;
  std::string text_;
  std::vector<int32_t> recent_;
};

// The model's <eos> id, when its tokenizer has one.
std::optional<int32_t> eos_token(const Tokenizer& tok);
// The model's <bos> id, when its tokenizer has one (a new context starts with it).
std::optional<int32_t> bos_token(const Tokenizer& tok);

}  // namespace longvq
