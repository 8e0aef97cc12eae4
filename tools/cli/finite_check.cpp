#include "tools/cli/finite_check.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "tools/cli/common.h"

namespace longvq::cli {
namespace {

int64_t first_bad(std::span<const float> v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) return static_cast<int64_t>(i);
  return -1;
}

// Which layer's output is the first with a non-finite value in the last run of `session`.
std::string first_bad_layer(const Session& session) {
  const int layers = static_cast<int>(session.model().config().n_layers);
  for (int i = 0; i < layers; ++i)
    if (first_bad(session.layer_output(i)) >= 0)
      return "the first non-finite values come out of layer " + std::to_string(i) + " (its weights: layers." +
             std::to_string(i) + ".*)";
  return "every layer's output is finite, so it is the final norm or the output head";
}

[[noreturn]] void fail(const Model& model, float value, const std::string& what, const std::string& where) {
  throw std::runtime_error(model.dir().string() + ": the model computed a non-finite logit (" + strf("%g", value) +
                           ") at " + what + "; " + where + ". A weight overflows float32 at run time (e.g. a huge "
                           "norm weight): the model file is broken, re-export or retrain it");
}

}  // namespace

void check_lm_logits(const std::shared_ptr<const Model>& model, std::span<const float> logits,
                     std::span<const int32_t> tokens, const std::string& what) {
  const int64_t at = first_bad(logits);
  if (at < 0) return;
  // Rerun from an empty context: a weight that overflows does so in any context. The last
  // tokens are enough to show it (a context-dependent overflow is said to be one).
  const std::span<const int32_t> tail = tokens.last(std::min<size_t>(tokens.size(), 512));
  std::string where = "the overflow depends on this context and could not be traced to one layer";
  if (!tail.empty()) {
    Session diagnose(model, {.max_batch = 1, .max_chunk = static_cast<int64_t>(tail.size()), .layer_outputs = true});
    State state = diagnose.new_state(1);
    if (first_bad(diagnose.prefill(state, tail)) >= 0) where = first_bad_layer(diagnose);
  }
  fail(*model, logits[static_cast<size_t>(at)], what, where);
}

void check_class_logits(const std::shared_ptr<const Model>& model, std::span<const float> logits,
                        std::span<const int32_t> tokens, std::span<const float> values,
                        std::span<const int32_t> lengths, int64_t n, const std::string& what) {
  const int64_t at = first_bad(logits);
  if (at < 0) return;
  const int64_t batch = static_cast<int64_t>(lengths.size());
  Session diagnose(model, {.max_batch = batch, .max_length = n, .layer_outputs = true});
  if (tokens.empty()) diagnose.forward(values, lengths, n);
  else diagnose.forward(tokens, lengths, n);
  fail(*model, logits[static_cast<size_t>(at)], what, first_bad_layer(diagnose));
}

}  // namespace longvq::cli
