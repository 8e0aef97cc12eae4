// Bits per byte of a text (perplexity_score.h): shared by `longvq perplexity` and the binding.
#include "tools/cli/perplexity_score.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "engine/longvq.h"
#include "engine/text/tokenizer.h"
#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/progress.h"
#include "tools/cli/stats.h"

namespace longvq::cli {

PerplexityResult score_perplexity(const std::shared_ptr<const Model>& model, std::string_view text,
                                  const std::string& name, const PerplexityScoreOptions& o,
                                  const ByteLogprobSink& per_byte) {
  const ModelConfig& cfg = model->config();
  if (cfg.task != ModelConfig::Task::lm || cfg.tokenizer.kind != TokenizerConfig::Kind::bytes)
    throw std::runtime_error(model->dir().string() + " is a" +
                             (cfg.task != ModelConfig::Task::lm ? std::string(" classifier")
                                                                : " '" + std::string(to_string(cfg.tokenizer.kind)) +
                                                                      "'-tokenizer language model") +
                             "; perplexity in bits per byte needs a causal LM with the bytes tokenizer");
  if (std::find(cfg.tokenizer.specials.begin(), cfg.tokenizer.specials.end(), "<bos>") == cfg.tokenizer.specials.end())
    throw std::runtime_error(model->dir().string() + " has no <bos> token; the text is scored after <bos>, as the "
                             "model was trained");
  if (text.empty()) throw std::runtime_error(name + ": the text is empty; nothing to score");
  if (static_cast<int64_t>(text.size()) > kMaxStatePosition)  // refused now, not hours into the run
    throw UsageError(name + ": " + group_digits(static_cast<int64_t>(text.size())) + " bytes, more than the longest "
                     "context a state holds (" + group_digits(kMaxStatePosition) + " tokens): split the text");
  check_activation_memory(cfg, 1, o.chunk, "--chunk " + group_digits(o.chunk));
  Tokenizer tok(cfg.tokenizer);
  const int32_t bos = tok.special_id("<bos>");

  // inputs = <bos> + bytes[0..n-2], targets = bytes[0..n-1].
  const int64_t n = static_cast<int64_t>(text.size());
  std::vector<int32_t> inputs(static_cast<size_t>(n));
  inputs[0] = bos;
  for (int64_t i = 1; i < n; ++i) inputs[static_cast<size_t>(i)] = static_cast<unsigned char>(text[static_cast<size_t>(i - 1)]);

  SessionOptions so;
  so.max_batch = 1;
  so.max_chunk = o.chunk;
  so.threads = o.threads;
  Session session(model, so);
  State state = session.new_state(1);
  const int64_t V = cfg.vocab_size;
  double nats = 0;
  Progress progress("perplexity", n, "tok", o.progress && Progress::stderr_is_terminal());
  const int64_t t0 = now_ns();
  // One prefill of the whole text (chunked inside); the sink scores each chunk as it comes.
  const std::vector<RowTokens> rows = {{0, inputs}};
  session.prefill(state, rows, [&](size_t, int64_t a, std::span<const float> logits) {
    const int64_t len = static_cast<int64_t>(logits.size()) / V;
    check_lm_logits(model, logits, std::span(inputs).subspan(static_cast<size_t>(a), static_cast<size_t>(len)),
                    name + " bytes " + group_digits(a) + ".." + group_digits(a + len - 1));
    for (int64_t i = 0; i < len; ++i) {
      const float* l = logits.data() + i * V;
      const double top = *std::max_element(l, l + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v]) - top);
      const int32_t target = static_cast<unsigned char>(text[static_cast<size_t>(a + i)]);
      const double nll = top + std::log(sum) - static_cast<double>(l[target]);
      nats += nll;
      if (per_byte) per_byte(a + i, target, -nll);
    }
    progress.update(a + len);
  });
  PerplexityResult r;
  r.seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  progress.finish();
  r.bytes = r.tokens = n;
  r.nats = nats;
  r.nats_per_byte = nats / static_cast<double>(n);
  r.bits_per_byte = r.nats_per_byte / std::log(2.0);
  r.perplexity_per_byte = std::exp(r.nats_per_byte);
  if (!std::isfinite(r.bits_per_byte))  // finite logits give finite losses; this guards the sum itself
    throw std::runtime_error(name + ": the bits per byte came out as " + strf("%g", r.bits_per_byte) +
                             "; the model's logits are too extreme to score this text");
  r.tokens_per_second = static_cast<double>(n) / std::max(r.seconds, 1e-9);
  if (o.describe_plans) r.plans = session.describe_plans();
  return r;
}

}  // namespace longvq::cli
