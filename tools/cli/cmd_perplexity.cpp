// longvq perplexity: bits per byte of a text under a byte-level LM, scored exactly as the
// reference scores the held-out text (the scoring itself: perplexity_score.h, shared with the
// Python binding).
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
#include "tools/cli/perplexity_score.h"
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
  PerplexityScoreOptions so;
  so.chunk = o.chunk;
  so.threads = o.model.threads;
  so.progress = !o.no_progress;
  so.describe_plans = o.model.verbose;
  bool out_ok = true;
  ByteLogprobSink per_byte;
  if (o.per_token)  // one line per byte: position, byte, its log-probability (nats)
    per_byte = [&](int64_t position, int byte, double logprob) {
      if (out_ok)
        out_ok = std::printf("{\"position\":%lld,\"byte\":%d,\"logprob\":%.9g}\n", static_cast<long long>(position),
                             byte, logprob) > 0;
    };
  const PerplexityResult r = score_perplexity(model, text, name, so, per_byte);
  if (!out_ok) throw std::runtime_error("could not write the output (stdout)");
  const int64_t n = r.bytes;
  const double bpb = r.bits_per_byte, nats_per_byte = r.nats_per_byte, seconds = r.seconds, tps = r.tokens_per_second;

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
  if (o.model.verbose) std::fprintf(stderr, "%s", r.plans.c_str());
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
