// One turn of `longvq generate` (generate_turn.h): shared by the CLI and the Python binding.
#include "tools/cli/generate_turn.h"

#include <stdexcept>

#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/progress.h"
#include "tools/cli/stats.h"

namespace longvq::cli {

void check_generate_model(const Model& model) {
  if (model.config().task != ModelConfig::Task::lm)
    throw std::runtime_error(model.dir().string() + " is a classifier; generate needs a causal language model "
                             "(task 'lm'); use 'longvq classify'");
}

std::vector<int32_t> turn_feed(std::optional<int32_t> pending, std::optional<int32_t> bos, bool new_context,
                               bool no_bos, std::span<const int32_t> ids) {
  std::vector<int32_t> feed;
  if (pending) feed.push_back(*pending);
  else if (new_context && bos && (!no_bos || ids.empty())) feed.push_back(*bos);
  feed.insert(feed.end(), ids.begin(), ids.end());
  return feed;
}

TurnRunner::TurnRunner(Conversation& c, const std::vector<int32_t>& feed, const GenerationParams& gp,
                       bool progress_wanted, Timing& timing)
    : c_(c), timing_(timing), gen_(c.tok, gp, eos_token(c.tok)) {
  if (feed.empty()) throw std::invalid_argument("a turn needs at least one token to feed");
  feed_back_ = feed.back();
  const int64_t V = c.model->config().vocab_size;
  gen_.accept_context(c.recent);
  gen_.accept_context(std::span<const int32_t>(feed).subspan(c.pending ? 1 : 0));
  // With nothing to sample, all but the last token are consumed; it stays pending.
  const size_t consume = gen_.finished() ? feed.size() - 1 : feed.size();
  turn_.prompt_tokens = static_cast<int64_t>(consume);
  if (consume > 0) {
    const std::span<const int32_t> part(feed.data(), consume);
    Progress progress("prefill", static_cast<int64_t>(consume), "tok",
                      progress_wanted && static_cast<int64_t>(consume) > c.session.options().max_chunk &&
                          Progress::stderr_is_terminal());
    const int64_t t0 = now_ns();
    const std::vector<RowTokens> rows = {{0, part}};
    auto l = c.session.prefill(c.state, rows, [&](size_t, int64_t a, std::span<const float> logits) {
      const int64_t len = static_cast<int64_t>(logits.size()) / V;
      check_lm_logits(c.model, logits, part.subspan(static_cast<size_t>(a), static_cast<size_t>(len)),
                      "prompt tokens " + group_digits(a) + ".." + group_digits(a + len - 1));
      progress.update(a + len);
    });
    last_.assign(l.begin(), l.end());
    timing.prefill_ns += now_ns() - t0;
    timing.prefilled += static_cast<int64_t>(consume);
  }
}

Generation::Step TurnRunner::next() {
  if (gen_.finished()) throw std::logic_error("TurnRunner::next() after the generation finished");
  if (to_feed_) {  // the token sampled last time: the state consumes it, giving this step's logits
    const int32_t next = *to_feed_;
    const int64_t b = now_ns();
    std::span<const float> logits = c_.session.decode(c_.state, std::span(&next, 1));
    timing_.decode_ns += now_ns() - b;
    ++timing_.decoded;
    check_lm_logits(c_.model, logits, std::span(&next, 1), "generated token " + group_digits(timing_.generated));
    last_.assign(logits.begin(), logits.end());
    to_feed_.reset();
  }
  const int64_t a = now_ns();
  Generation::Step step = gen_.step(last_);
  timing_.sample_ns += now_ns() - a;
  ++timing_.generated;
  turn_.tokens.push_back(step.token);
  if (!c_.shown_any && !step.text.empty() && c_.tok.kind() == TokenizerConfig::Kind::vocab && step.text[0] == ' ')
    step.text.erase(0, 1);  // the first word on an empty line
  c_.shown_any = c_.shown_any || !step.text.empty();
  turn_.text += step.text;
  if (!gen_.finished()) to_feed_ = step.token.id;
  return step;
}

Turn TurnRunner::finish(bool output_failed) {
  turn_.reason = gen_.finished() ? gen_.reason() : FinishReason::cancelled;
  c_.pending = gen_.pending() ? gen_.pending() : std::optional<int32_t>(feed_back_);
  c_.recent = gen_.recent();
  if (output_failed) turn_.reason = FinishReason::error;
  return turn_;
}

Turn run_turn(Conversation& c, const std::vector<int32_t>& feed, const GenerationParams& gp, bool progress_wanted,
              Timing& timing, const std::function<bool(const std::string&)>& show) {
  TurnRunner runner(c, feed, gp, progress_wanted, timing);
  bool out_ok = true;
  while (!runner.finished()) {
    const Generation::Step step = runner.next();
    if (!(out_ok = show(step.text))) break;
  }
  return runner.finish(!out_ok);
}

}  // namespace longvq::cli
