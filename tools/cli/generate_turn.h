// One turn of `longvq generate` without its command line: feed the tokens a context has not
// consumed yet (the pending token, <bos>, the prompt), prefill them, then sample until the
// Generation stops. Shared by the CLI (run_turn, which streams the text to stdout) and the Python
// binding (Model.generate, which pulls one step at a time through TurnRunner), so a seed gives
// the same tokens and text in both.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "engine/serving/generation.h"
#include "engine/text/tokenizer.h"

namespace longvq::cli {

// One conversation in row 0 of a 1-row state, carried from turn to turn.
struct Conversation {
  std::shared_ptr<const Model> model;
  const Tokenizer& tok;
  Session& session;
  State state;
  std::optional<int32_t> pending;  // the last token, which the state has not consumed
  std::vector<int32_t> recent;     // the latest context tokens (repetition penalty)
  bool shown_any = false;          // whether the output has text yet (vocab models space words)
};

struct Timing {
  int64_t prefilled = 0, decoded = 0, generated = 0;
  int64_t prefill_ns = 0, decode_ns = 0, sample_ns = 0;
};

struct Turn {
  std::string text;
  std::vector<TokenInfo> tokens;
  FinishReason reason = FinishReason::none;
  int64_t prompt_tokens = 0;
};

// runtime_error unless the model is a causal LM (what generate needs).
void check_generate_model(const Model& model);

// What the state has not consumed yet: the pending token, else <bos> for a new context (unless
// no_bos and the prompt is not empty), then the prompt's ids. `new_context`: the state holds
// nothing yet (no --state-in).
std::vector<int32_t> turn_feed(std::optional<int32_t> pending, std::optional<int32_t> bos, bool new_context,
                               bool no_bos, std::span<const int32_t> ids);

// A turn pulled one step at a time. The constructor prefills `feed` (all of it, or all but the
// last token when nothing is to be sampled: it stays pending); each next() first feeds the token
// sampled by the previous next() (decode), then samples one more. Every logit is checked to be
// finite. finish() ends the turn (early or not) and leaves the conversation ready for the next.
class TurnRunner {
 public:
  TurnRunner(Conversation& c, const std::vector<int32_t>& feed, const GenerationParams& gp, bool progress_wanted,
             Timing& timing);

  bool finished() const { return gen_.finished(); }
  // One token (not callable once finished()): its info and the text that became safe to show.
  Generation::Step next();
  // Ends the turn: the reason (cancelled when it stopped before the generation did; error when
  // `output_failed`), and updates the conversation's pending and recent tokens.
  Turn finish(bool output_failed = false);

  const Turn& turn() const { return turn_; }
  const Generation& generation() const { return gen_; }

 private:
  Conversation& c_;
  Timing& timing_;
  Generation gen_;
  Turn turn_;
  std::vector<float> last_;    // logits after the last consumed token
  std::optional<int32_t> to_feed_;  // sampled by the previous next(), not consumed yet
  int32_t feed_back_ = 0;      // the feed's last token
};

// Feeds and samples until the generation stops. `show` gets each piece of text as it becomes
// safe to show; false from it stops the turn (stdout closed: finish reason error).
Turn run_turn(Conversation& c, const std::vector<int32_t>& feed, const GenerationParams& gp, bool progress_wanted,
              Timing& timing, const std::function<bool(const std::string&)>& show);

}  // namespace longvq::cli
