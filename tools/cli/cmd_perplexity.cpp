// longvq perplexity: bits per byte of a text under a byte-level LM, scored exactly as the
// reference scores the held-out text (tools/longvq_ref/recipes.py, AustenTask.evaluate): the
// text is ONE sequence [<bos>] + bytes, prefilled in chunks with the state carried across, and
// every byte is predicted from everything before it.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "engine/text/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/process_setup.h"
#include "tools/cli/progress.h"
#include "tools/cli/stats.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

namespace {

struct PerplexityOptions {
  ModelFlags model;
  std::string file;
  int64_t chunk = 512;
  bool json = false;
  bool per_token = false;
  bool no_progress = false;
  int64_t max_input_bytes = kDefaultMaxInputBytes;
};

int run_perplexity(const PerplexityOptions& o, const CLI::App& app) {
  std::string text;
  std::string name;
  const std::string path = app.count("--file") ? o.file : "-";
  if (!app.count("--file") && (stdin_closed() || is_terminal(STDIN_FILENO)))
    throw UsageError(std::string("no text: ") + (stdin_closed() ? "stdin is closed; " : "") +
                     "give -f FILE or pipe the text on stdin");
  text = read_input(path, o.max_input_bytes);
  name = input_name(path);

  auto model = load_model(o.model);
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
  so.threads = o.model.threads;
  Session session(model, so);
  State state = session.new_state(1);
  const int64_t V = cfg.vocab_size;
  double nats = 0;
  Progress progress("perplexity", n, "tok", !o.no_progress && Progress::stderr_is_terminal());
  bool out_ok = true;
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
      if (o.per_token && out_ok)  // one line per byte: position, byte, its log-probability (nats)
        out_ok = std::printf("{\"position\":%lld,\"byte\":%d,\"logprob\":%.9g}\n", static_cast<long long>(a + i),
                             target, -nll) > 0;
    }
    progress.update(a + len);
  });
  if (!out_ok) throw std::runtime_error("could not write the output (stdout)");
  const double seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  progress.finish();
  const double nats_per_byte = nats / static_cast<double>(n);
  const double bpb = nats_per_byte / std::log(2.0);
  if (!std::isfinite(bpb))  // finite logits give finite losses; this guards the sum itself
    throw std::runtime_error(name + ": the bits per byte came out as " + strf("%g", bpb) + "; the model's logits "
                             "are too extreme to score this text");
  const double tps = static_cast<double>(n) / std::max(seconds, 1e-9);

  if (o.per_token) {  // stdout holds the JSONL; the summary goes to stderr
    std::fprintf(stderr, "bits per byte: %.6f (%s bytes of %s)\n", bpb, group_digits(n).c_str(), name.c_str());
  } else if (o.json) {
    nlohmann::ordered_json j = {{"model", model->dir().string()}, {"file", name}, {"bytes", n}, {"tokens", n},
                        {"bits_per_byte", bpb}, {"perplexity_per_byte", std::exp(nats_per_byte)},
                        {"nats_per_byte", nats_per_byte}, {"chunk", o.chunk}, {"seconds", seconds},
                        {"tokens_per_second", tps}, {"threads", effective_threads(o.model.threads)}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model:         %s\n", model->dir().string().c_str());
    std::printf("text:          %s, %s bytes, scored as one sequence after <bos> (chunks of %lld)\n", name.c_str(),
                group_digits(n).c_str(), static_cast<long long>(o.chunk));
    std::printf("bits per byte: %.6f\n", bpb);
    std::printf("perplexity:    %.6f per byte (%.6f nats per byte)\n", std::exp(nats_per_byte), nats_per_byte);
    std::printf("speed:         %.1f tokens/s (%.3f s, %d threads)\n", tps, seconds, effective_threads(o.model.threads));
  }
  if (o.model.verbose) std::fprintf(stderr, "%s", session.describe_plans().c_str());
  return kExitOk;
}

}  // namespace

Command add_perplexity(CLI::App& root) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* app = root.add_subcommand("perplexity", "Bits per byte and perplexity of a byte-level LM on a text file");
  app->description(app->get_description() + ".\n\n" +
      "Score a text with a byte-level causal LM, as the reference evaluates the shipped model: the whole text is\n"
      "one sequence <bos> + bytes, prefilled in chunks with the state carried across, each byte predicted from\n"
      "all bytes before it. Prints bits per byte, per-byte perplexity (2^bits) and speed on stdout.");
  add_model_flags(*app, o->model);
  app->add_option("-f,--file", o->file, "Text file to score ('-' = stdin; stdin is also used when it is piped)")
      ->type_name("FILE");
  app->add_option("--chunk", o->chunk, "Tokens per prefill graph run (the result does not depend on it)")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  add_max_input_flag(*app, o->max_input_bytes);
  auto* json = app->add_flag("--json", o->json, "Print the result as one JSON object");
  app->add_flag("--per-token", o->per_token, "Print JSONL, one line per byte: {\"position\", \"byte\", \"logprob\"} "
                                             "(natural log); the summary then goes to stderr")->excludes(json);
  app->add_flag("--no-progress", o->no_progress, "No progress bar (it is only drawn when stderr is a terminal)");
  app->footer(
      "Examples:\n"
      "  longvq perplexity -f data/austen/test.txt\n"
      "  longvq perplexity -m tests/fixtures/lm_bytes_layernorm_tied -f tests/cli/data/sample.txt --json\n"
      "  longvq perplexity -f book.txt --per-token > logprobs.jsonl");
  return {app, [o, app] { return run_perplexity(*o, *app); }};
}

}  // namespace longvq::cli
