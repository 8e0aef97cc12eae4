// longvq generate: prefill a prompt, then sample tokens one by one and stream them to stdout.
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/longvq.h"
#include "engine/text/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/process_setup.h"
#include "tools/cli/progress.h"
#include "tools/cli/prompt_cache.h"
#include "engine/serving/sampler.h"
#include "tools/cli/stats.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

namespace {

struct GenerateOptions {
  ModelFlags model;
  std::string prompt;
  std::string file;
  int64_t n_predict = 200;
  SamplerParams sampling;
  int64_t seed = -1;
  std::string state_in, state_out;
  bool no_bos = false;
  bool no_display_prompt = false;
  int64_t chunk = 512;
  int64_t max_prompt = int64_t{1} << 24;
  int64_t max_input_bytes = kDefaultMaxInputBytes;
  bool no_progress = false;
};

uint64_t random_seed() {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return (t ^ (uint64_t{rd()} << 32) ^ rd()) & 0x7fffffffffffffffULL;  // printable as a signed flag value
}

// Prefills `tokens` one chunk per call (so long prompts never hold all their logits) and
// returns the logits after the last token. Every logit is checked to be finite. A prompt of
// more than one chunk shows its progress on stderr when that is a terminal.
std::vector<float> prefill_all(const std::shared_ptr<const Model>& model, Session& session, State& state,
                               std::span<const int32_t> tokens, bool progress_wanted) {
  const size_t chunk = static_cast<size_t>(session.options().max_chunk);
  const size_t V = static_cast<size_t>(session.model().config().vocab_size);
  Progress progress("prefill", static_cast<int64_t>(tokens.size()), "tok",
                    progress_wanted && tokens.size() > chunk && Progress::stderr_is_terminal());
  std::vector<float> last;
  for (size_t a = 0; a < tokens.size(); a += chunk) {
    const std::span<const int32_t> part = tokens.subspan(a, std::min(chunk, tokens.size() - a));
    std::span<const float> logits = session.prefill(state, part);
    check_lm_logits(model, logits, part, "prompt tokens " + group_digits(static_cast<int64_t>(a)) + ".." +
                                             group_digits(static_cast<int64_t>(a + part.size() - 1)));
    if (a + chunk >= tokens.size()) last.assign(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
    progress.update(static_cast<int64_t>(a + part.size()));
  }
  return last;
}

// Writes bytes to stdout now; false once that fails (stdout full or closed, e.g. `| head`).
bool emit(const std::string& bytes) {
  if (bytes.empty()) return true;
  return std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size() && std::fflush(stdout) == 0;
}

int run_generate(const GenerateOptions& o, const CLI::App& app) {
  // Prompt text: -p, -f, or stdin when it is not a terminal.
  std::string text;
  if (app.count("--prompt"))
    text = o.prompt;
  else if (app.count("--file"))
    text = read_input(o.file, o.max_input_bytes);
  else if (stdin_closed())
    throw UsageError("no prompt: stdin is closed; give one with -p TEXT (-p '' for none), -f FILE or on stdin");
  else if (!is_terminal(STDIN_FILENO))
    text = read_input("-", o.max_input_bytes);

  const std::filesystem::path model_dir = resolve_model_dir(o.model);
  if (!o.state_out.empty())  // --state-in may be the same file: it is read whole before the write
    check_output_path("--state-out", o.state_out,
                      {{"-f", o.file}, {"-m", (model_dir / "config.json").string()},
                       {"-m", (model_dir / "model.safetensors").string()}});
  auto model = load_model(o.model);
  const ModelConfig& cfg = model->config();
  if (cfg.task != ModelConfig::Task::lm)
    throw std::runtime_error(model->dir().string() + " is a classifier; generate needs a causal language model "
                             "(task 'lm'); use 'longvq classify'");
  check_activation_memory(cfg, 1, o.chunk, "--chunk " + group_digits(o.chunk));
  Tokenizer tok(cfg.tokenizer);
  const std::vector<int32_t> ids = tok.encode(text);
  if (static_cast<int64_t>(ids.size()) > o.max_prompt)
    throw UsageError("the prompt has " + group_digits(static_cast<int64_t>(ids.size())) + " tokens, more than --max-prompt " +
                     group_digits(o.max_prompt) + "; raise --max-prompt (the state stays the same size; only the "
                     "prompt's token ids are held in memory) or shorten the prompt");
  std::optional<int32_t> bos;
  if (cfg.tokenizer.kind == TokenizerConfig::Kind::bytes)
    for (const std::string& s : cfg.tokenizer.specials)
      if (s == "<bos>") bos = tok.special_id("<bos>");

  SessionOptions so;
  so.max_batch = 1;
  so.max_chunk = o.chunk;
  so.threads = o.model.threads;
  Session session(model, so);

  // What the state has not consumed yet: the cache's pending token, <bos> for a new context,
  // then the prompt.
  std::vector<int32_t> feed;
  std::optional<State> loaded;
  if (!o.state_in.empty()) {
    std::string warning;
    loaded.emplace(State::load(o.state_in, *model, session.backend(), &warning));
    if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    if (loaded->batch() != 1)
      throw std::runtime_error(o.state_in + ": the state holds " + std::to_string(loaded->batch()) +
                               " sequences; generate continues exactly one");
    if (auto pending = read_pending_token(o.state_in, cfg.vocab_size)) feed.push_back(*pending);
    else if (ids.empty())
      throw UsageError(o.state_in + " has no pending token (it was not written by 'longvq generate "
                       "--state-out'), so there is nothing to continue from: give a prompt with -p or -f");
  } else if (bos && (!o.no_bos || ids.empty())) {
    feed.push_back(*bos);
  }
  feed.insert(feed.end(), ids.begin(), ids.end());
  if (feed.empty())
    throw UsageError("the prompt is empty and this model has no <bos> token to start from; give a prompt with "
                     "-p TEXT, -f FILE or on stdin");
  State state = loaded ? std::move(*loaded) : session.new_state(1);
  // Refused now rather than after the prompt: a run that would pass the longest context.
  const int64_t will_consume = static_cast<int64_t>(feed.size()) - 1 + o.n_predict;
  state.check_advance({}, std::max<int64_t>(will_consume, 0));

  // Build and plan the prefill and decode graphs now (one token on a scratch state), so the
  // timings below measure running them, not setting them up.
  const int64_t t_setup0 = now_ns();
  {
    State scratch = session.new_state(1);
    session.prefill(scratch, std::span(feed).first(1));
    session.decode(scratch, std::span(feed).first(1));
  }
  const int64_t t_setup = now_ns() - t_setup0;

  SamplerParams sp = o.sampling;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : random_seed();
  Sampler sampler(sp);
  for (int32_t t : feed) sampler.accept(t);

  const bool vocab = cfg.tokenizer.kind == TokenizerConfig::Kind::vocab;
  bool printed_any = false, out_ok = true;
  int out_error = 0;
  auto show = [&](std::span<const int32_t> toks) {
    if (toks.empty() || !out_ok) return;
    std::string s = tok.decode(toks);
    if (vocab && printed_any) s.insert(s.begin(), ' ');  // vocab tokens are space-separated words
    printed_any = true;
    out_ok = emit(s);
    if (!out_ok) out_error = errno;
  };
  if (!o.no_display_prompt) show(ids);

  int32_t pending = feed.back();
  int64_t prefilled = 0, decoded = 0, generated = 0;
  int64_t t_prefill = 0, t_decode = 0, t_sample = 0;
  const int64_t t0 = now_ns();
  const bool progress = !o.no_progress;
  if (o.n_predict == 0) {
    // Consume all but the last token; it stays pending for a later --state-in.
    if (feed.size() > 1) {
      prefill_all(model, session, state, std::span(feed).first(feed.size() - 1), progress);
      prefilled = static_cast<int64_t>(feed.size()) - 1;
    }
    t_prefill = now_ns() - t0;
  } else {
    std::vector<float> last = prefill_all(model, session, state, feed, progress);
    prefilled = static_cast<int64_t>(feed.size());
    t_prefill = now_ns() - t0;
    for (int64_t i = 0; i < o.n_predict; ++i) {
      const int64_t a = now_ns();
      const int32_t next = sampler.sample(last);
      sampler.accept(next);
      t_sample += now_ns() - a;
      ++generated;
      pending = next;
      show(std::span(&next, 1));
      if (!out_ok) break;
      if (i + 1 < o.n_predict) {
        const int64_t b = now_ns();
        std::span<const float> step = session.decode(state, std::span(&next, 1));
        t_decode += now_ns() - b;
        ++decoded;
        check_lm_logits(model, step, std::span(&next, 1), "generated token " + group_digits(generated));
        last.assign(step.begin(), step.end());
      }
    }
  }
  // Text the reader never got: exit 1, and no --state-out continuing it.
  if (!out_ok)
    throw std::runtime_error("could not write the output (stdout: " + std::string(std::strerror(out_error)) + ")" +
                             (o.state_out.empty() ? "" : "; --state-out was not written"));
  // No newline of our own on stdout: a resumed run's output then continues this one byte for
  // byte. The summary on stderr starts on a fresh line.

  if (!o.state_out.empty()) save_prompt_cache(state, pending, o.state_out);

  // Summary on stderr.
  auto per_s = [](int64_t n, int64_t ns) { return ns > 0 ? 1e9 * static_cast<double>(n) / static_cast<double>(ns) : 0.0; };
  std::fprintf(stderr, "\n");
  std::fprintf(stderr, "setup:    graphs built and planned in %.2f ms on %s\n", t_setup * 1e-6,
               session.backend().name().c_str());
  std::fprintf(stderr, "prefill:  %lld tokens in %.2f ms (%.1f tokens/s)\n", static_cast<long long>(prefilled),
               t_prefill * 1e-6, per_s(prefilled, t_prefill));
  std::fprintf(stderr, "decode:   %lld tokens generated, %lld decode steps in %.2f ms (%.1f tokens/s, %.3f ms/token); "
               "sampling %.3f ms/token\n",
               static_cast<long long>(generated), static_cast<long long>(decoded), t_decode * 1e-6,
               per_s(decoded, t_decode), decoded ? t_decode * 1e-6 / static_cast<double>(decoded) : 0.0,
               generated ? t_sample * 1e-6 / static_cast<double>(generated) : 0.0);
  std::fprintf(stderr, "state:    %s bytes per sequence, constant in the context length; context %lld tokens (%lld "
               "consumed + 1 pending)\n",
               group_digits(static_cast<int64_t>(state.bytes_per_sequence())).c_str(),
               static_cast<long long>(state.positions()[0] + 1), static_cast<long long>(state.positions()[0]));
  if (sp.temperature <= 0)
    std::fprintf(stderr, "sampling: greedy (--temp 0)\n");
  else
    std::fprintf(stderr, "sampling: seed %llu, temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g (last %d); "
                 "rerun with --seed %llu to reproduce\n",
                 static_cast<unsigned long long>(sp.seed), sp.temperature, sp.top_k, sp.top_p, sp.min_p,
                 sp.repeat_penalty, sp.repeat_last_n, static_cast<unsigned long long>(sp.seed));
  if (!o.state_out.empty()) std::fprintf(stderr, "saved:    %s (continue with --state-in %s)\n",
                                         o.state_out.c_str(), o.state_out.c_str());
  if (o.model.verbose) std::fprintf(stderr, "\n%s", session.describe_plans().c_str());
  return kExitOk;
}

}  // namespace

Command add_generate(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* app = root.add_subcommand("generate", "Generate text with a causal LM: prefill a prompt, then sample "
                                                  "tokens and stream them to stdout");
  app->description(app->get_description() + ".\n\n" +
      "Generate text with a causal language model. The prompt (-p, -f, or stdin when it is not a terminal) is\n"
      "prefilled in chunks, then -n tokens are sampled one at a time and streamed to stdout as they are made.\n"
      "A new context starts with the model's <bos> token when it has one. A summary (prefill and decode speed,\n"
      "state size, seed) goes to stderr. --state-out saves the context so that --state-in continues it exactly.");
  add_model_flags(*app, o->model);
  auto* prompt = app->add_option("-p,--prompt", o->prompt, "Prompt text")->type_name("TEXT");
  auto* file = app->add_option("-f,--file", o->file, "Read the prompt from FILE ('-' = stdin)")->type_name("FILE");
  prompt->excludes(file);
  app->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (0 = only consume the prompt)")
      ->capture_default_str()->check(integer_in(0, kMaxSize));
  app->add_option("--temp", o->sampling.temperature, "Temperature; 0 = greedy (always the most likely token)")
      ->capture_default_str()->check(number_in(0));
  app->add_option("--top-k", o->sampling.top_k, "Keep the k most likely tokens; 0 = all")
      ->capture_default_str()->check(integer_in(0, kMaxSize));
  app->add_option("--top-p", o->sampling.top_p, "Keep the most likely tokens until their probability reaches p; 1 = off")
      ->capture_default_str()->check(number_in(0, 1));
  app->add_option("--min-p", o->sampling.min_p, "Drop tokens less likely than min-p × the most likely one; 0 = off")
      ->capture_default_str()->check(number_in(0, 1));
  app->add_option("--repeat-penalty", o->sampling.repeat_penalty,
                  "Penalize tokens seen in the last --repeat-last-n: positive logits ÷ this, negative × this; 1 = off")
      ->capture_default_str()->check(number_in(0, std::numeric_limits<double>::infinity(), /*lo_open=*/true));
  app->add_option("--repeat-last-n", o->sampling.repeat_last_n, "How many recent tokens the repeat penalty looks at")
      ->capture_default_str()->check(integer_in(0, kMaxSize));
  app->add_option("-s,--seed", o->seed, "Sampling seed; -1 = random (printed in the summary so a run can be repeated)")
      ->capture_default_str()->check(integer_in(-1));
  app->add_option("--state-in", o->state_in, "Continue the context saved in FILE by --state-out (the prompt, may be "
                                             "empty, is appended)")->type_name("FILE");
  app->add_option("--state-out", o->state_out, "Save the context (prompt + generated tokens) to FILE at the end")
      ->type_name("FILE");
  app->add_flag("--no-bos", o->no_bos, "Do not start a new context with <bos> (still used when the prompt is empty)");
  app->add_flag("--no-display-prompt", o->no_display_prompt, "Do not echo the prompt to stdout");
  app->add_option("--chunk", o->chunk, "Prompt tokens per prefill graph run")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_option("--max-prompt", o->max_prompt, "Refuse prompts of more tokens than this")
      ->capture_default_str()->check(integer_in(1));
  add_max_input_flag(*app, o->max_input_bytes);
  app->add_flag("--no-progress", o->no_progress, "No prefill progress bar (it is only drawn when stderr is a terminal "
                                                 "and the prompt spans more than one --chunk)");
  app->footer(
      "Examples:\n"
      "  longvq generate -p \"It is a truth universally acknowledged\" -n 200 --seed 7\n"
      "  longvq generate -m tests/fixtures/lm_bytes_layernorm_tied -p Hello -n 20 --temp 0\n"
      "  longvq generate -f chapter1.txt -n 0 --state-out ch1.state     # cache a long prompt once\n"
      "  longvq generate --state-in ch1.state -p \"Chapter 2\" -n 300     # ... and continue it later");
  return {app, [o, app] { return run_generate(*o, *app); }};
}

}  // namespace longvq::cli
