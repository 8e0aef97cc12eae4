// `longvq perplexity`'s scoring without its command line: bits per byte of a text under a
// byte-level causal LM, scored exactly as the reference scores the held-out text
// (tools/longvq_ref/recipes.py, AustenTask.evaluate): the text is ONE sequence [<bos>] + bytes,
// prefilled in chunks with the state carried across, and every byte is predicted from
// everything before it. Shared by the CLI and the Python binding (Model.perplexity).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/runtime/model.h"

namespace longvq::cli {

struct PerplexityScoreOptions {
  int64_t chunk = 512;    // tokens per prefill graph run (the result does not depend on it)
  int threads = 0;        // CPU threads; 0 = all cores
  bool progress = false;  // a progress bar on stderr (drawn only when it is a terminal)
  bool describe_plans = false;  // fill PerplexityResult::plans
};

struct PerplexityResult {
  int64_t bytes = 0, tokens = 0;
  double nats = 0;  // the summed negative log-likelihood
  double nats_per_byte = 0, bits_per_byte = 0, perplexity_per_byte = 0;
  double seconds = 0, tokens_per_second = 0;
  std::string plans;  // the session's memory plans, with describe_plans
};

// Called for every byte in order: its position, its value and its log-probability (nats).
using ByteLogprobSink = std::function<void(int64_t position, int byte, double logprob)>;

// Scores `text`; `name` names it in messages ("book.txt", "<stdin>"). Errors: a model that is not
// a bytes-tokenizer causal LM with <bos>, or an empty text (runtime_error); a text longer than a
// state's longest context or sizes whose activations cannot fit (UsageError); a non-finite logit
// or result (runtime_error naming the bytes).
PerplexityResult score_perplexity(const std::shared_ptr<const Model>& model, std::string_view text,
                                  const std::string& name, const PerplexityScoreOptions& options,
                                  const ByteLogprobSink& per_byte = {});

}  // namespace longvq::cli
