// longvq generate: prefill a prompt, then sample tokens one by one and stream them to stdout; or
// a conversation (-i); or many prompts from a JSONL file as one continuous batch (--prompts).
// Sampling, stop strings and log-probabilities are the serving library's (engine/serving), the
// same code the server runs, so a seed gives the same text here as in `longvq serve`.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "engine/serving/generation.h"
#include "engine/serving/session_store.h"
#include "engine/text/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/generate_batch.h"
#include "tools/cli/generate_turn.h"
#include "tools/cli/process_setup.h"
#include "tools/cli/progress.h"
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
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int logprobs = -1;
  bool json = false;
  bool interactive = false;
  std::string prompts;  // --prompts FILE.jsonl
  std::string output;   // -o for --prompts
  int64_t parallel = 8;
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

// Writes bytes to stdout now; false once that fails (stdout full or closed, e.g. `| head`).
bool emit(const std::string& bytes) {
  if (bytes.empty()) return true;
  return std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size() && std::fflush(stdout) == 0;
}

nlohmann::ordered_json turn_json(const Tokenizer& tok, const std::string& prompt, const Turn& t, int logprobs) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
  for (const TokenInfo& k : t.tokens) {
    nlohmann::ordered_json j = {{"id", k.id}, {"text", to_valid_utf8(k.piece)}};
    if (logprobs >= 0) {
      j["logprob"] = k.logprob;
      nlohmann::ordered_json top = nlohmann::ordered_json::object();
      for (const auto& [id, lp] : k.top) top[to_valid_utf8(tok.decode(std::span<const int32_t>(&id, 1)))] = lp;
      if (logprobs > 0) j["top_logprobs"] = top;
    }
    tokens.push_back(j);
  }
  return {{"prompt", to_valid_utf8(prompt)},
          {"text", to_valid_utf8(t.text)},
          {"finish_reason", finish_reason_name(t.reason)},
          {"tokens", tokens},
          {"usage", {{"prompt_tokens", t.prompt_tokens}, {"completion_tokens", static_cast<int64_t>(t.tokens.size())}}}};
}

int run_generate(const GenerateOptions& o, const CLI::App& app) {
  if (o.logprobs >= 0 && !o.json && o.prompts.empty())
    throw UsageError("--logprobs needs --json (the log-probabilities go into the JSON output)");
  if (!o.prompts.empty()) {
    if (o.interactive || app.count("--prompt") || app.count("--file") || !o.state_in.empty() || !o.state_out.empty())
      throw UsageError("--prompts takes its prompts from the file: not with -p, -f, -i, --state-in or --state-out");
    BatchOptions b{o.model, o.prompts, o.output, o.parallel, o.chunk, o.n_predict, o.sampling, o.seed, o.stop,
                   o.ignore_eos, o.logprobs, o.max_prompt, o.max_input_bytes};
    return run_generate_batch(b);
  }
  if (!o.output.empty()) throw UsageError("-o is for --prompts; generate streams its text to stdout");
  // Prompt text: -p, -f, or stdin when it is not a terminal (in -i stdin is the conversation).
  std::string text;
  if (app.count("--prompt"))
    text = o.prompt;
  else if (app.count("--file"))
    text = read_input(o.file, o.max_input_bytes);
  else if (!o.interactive && stdin_closed())
    throw UsageError("no prompt: stdin is closed; give one with -p TEXT (-p '' for none), -f FILE or on stdin");
  else if (!o.interactive && !is_terminal(STDIN_FILENO))
    text = read_input("-", o.max_input_bytes);

  const std::filesystem::path model_dir = resolve_model_dir(o.model);
  if (!o.state_out.empty())  // --state-in may be the same file: it is read whole before the write
    check_output_path("--state-out", o.state_out,
                      {{"-f", o.file}, {"-m", (model_dir / "config.json").string()},
                       {"-m", (model_dir / "model.safetensors").string()}});
  auto model = load_model(o.model);
  const ModelConfig& cfg = model->config();
  check_generate_model(*model);
  check_activation_memory(cfg, 1, o.chunk, "--chunk " + group_digits(o.chunk));
  Tokenizer tok(cfg.tokenizer);
  const std::vector<int32_t> ids = tok.encode(text);
  if (static_cast<int64_t>(ids.size()) > o.max_prompt)
    throw UsageError("the prompt has " + group_digits(static_cast<int64_t>(ids.size())) + " tokens, more than --max-prompt " +
                     group_digits(o.max_prompt) + "; raise --max-prompt (the state stays the same size; only the "
                     "prompt's token ids are held in memory) or shorten the prompt");
  const std::optional<int32_t> bos = bos_token(tok);

  SessionOptions so;
  so.max_batch = 1;
  so.max_chunk = o.chunk;
  so.threads = o.model.threads;
  Session session(model, so);

  // The context: a saved one (its state, pending token and recent tokens), or a new one.
  Conversation c{model, tok, session, session.new_state(1), std::nullopt, {}, false};
  if (!o.state_in.empty()) {
    std::string warning;
    SavedContext ctx = load_context(o.state_in, *model, session.backend(), &warning);
    if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    c.state.set_row(0, *ctx.state, 0);
    c.pending = ctx.pending;
    c.recent = std::move(ctx.recent);
    if (!c.pending && ids.empty() && !o.interactive)
      throw UsageError(o.state_in + " has no pending token (it was not written by 'longvq generate "
                       "--state-out'), so there is nothing to continue from: give a prompt with -p or -f");
  }
  // What the state has not consumed yet: the pending token, <bos> for a new context, the prompt.
  std::vector<int32_t> feed = turn_feed(c.pending, bos, o.state_in.empty(), o.no_bos, ids);
  if (feed.empty() && !o.interactive)
    throw UsageError("the prompt is empty and this model has no <bos> token to start from; give a prompt with "
                     "-p TEXT, -f FILE or on stdin");
  // Refused now rather than after the prompt: a run that would pass the longest context.
  c.state.check_advance({}, std::max<int64_t>(static_cast<int64_t>(feed.size()) - 1 + o.n_predict, 0));

  // Build and plan the prefill and decode graphs now (one token on a scratch state), so the
  // timings below measure running them, not setting them up.
  const int64_t t_setup0 = now_ns();
  {
    State scratch = session.new_state(1);
    const int32_t one = feed.empty() ? 0 : feed[0];
    session.prefill(scratch, std::span(&one, 1));
    session.decode(scratch, std::span(&one, 1));
  }
  const int64_t t_setup = now_ns() - t_setup0;

  GenerationParams gp;
  gp.sampling = o.sampling;
  gp.sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : random_seed();
  gp.max_tokens = o.n_predict;
  gp.stop = o.stop;
  gp.stop_at_eos = !o.ignore_eos;
  gp.logprobs = o.json ? o.logprobs : -1;
  gp.utf8 = o.json;  // JSON needs whole characters; stdout gets the bytes as they come

  int out_error = 0;
  auto show = [&](const std::string& s) {
    if (o.json || emit(s)) return true;
    out_error = errno;
    return false;
  };
  if (!o.no_display_prompt && !o.json && !ids.empty()) {
    show(tok.decode(ids));
    c.shown_any = true;
  }
  Timing timing;
  nlohmann::ordered_json turns = nlohmann::ordered_json::array();
  bool ok = true;
  if (!feed.empty()) {
    const Turn t = run_turn(c, feed, gp, !o.no_progress, timing, show);
    ok = t.reason != FinishReason::error;
    if (o.json) turns.push_back(turn_json(tok, text, t, o.logprobs));
  }
  if (o.interactive) {  // llama-cli style: each line typed is a turn; the state carries across
    for (uint64_t turn = 1; ok; ++turn) {
      std::fprintf(stderr, "\n> ");
      std::fflush(stderr);
      std::string line;
      if (!std::getline(std::cin, line)) break;  // Ctrl-D
      line += '\n';
      feed.clear();
      if (c.pending) feed.push_back(*c.pending);
      else if (bos) feed.push_back(*bos);
      const std::vector<int32_t> more = tok.encode(line);
      feed.insert(feed.end(), more.begin(), more.end());
      if (feed.empty()) continue;
      c.state.check_advance({}, static_cast<int64_t>(feed.size()) + o.n_predict);
      GenerationParams tp = gp;
      tp.sampling.seed = gp.sampling.seed + turn;  // each turn its own draw, still reproducible
      const Turn t = run_turn(c, feed, tp, !o.no_progress, timing, show);
      ok = t.reason != FinishReason::error;
      if (o.json) turns.push_back(turn_json(tok, line, t, o.logprobs));
    }
  }
  if (ok && o.json) {
    const std::string out = (o.interactive ? turns.dump(2) : turns.at(0).dump(2)) + "\n";
    ok = emit(out);
    if (!ok) out_error = errno;
  }
  // Text the reader never got: exit 1, and no --state-out continuing it.
  if (!ok)
    throw std::runtime_error("could not write the output (stdout: " + std::string(std::strerror(out_error)) + ")" +
                             (o.state_out.empty() ? "" : "; --state-out was not written"));
  // No newline of our own on stdout: a resumed run's output then continues this one byte for
  // byte. The summary on stderr starts on a fresh line.
  if (!o.state_out.empty()) {
    SavedContext ctx;
    ctx.state.emplace(std::move(c.state));
    ctx.pending = c.pending;
    ctx.recent = c.recent;
    save_context(ctx, o.state_out, *model, session.backend());
    c.state = std::move(*ctx.state);
  }

  // Summary on stderr.
  auto per_s = [](int64_t n, int64_t ns) { return ns > 0 ? 1e9 * static_cast<double>(n) / static_cast<double>(ns) : 0.0; };
  std::fprintf(stderr, "\n");
  std::fprintf(stderr, "setup:    graphs built and planned in %.2f ms on %s\n", t_setup * 1e-6,
               session.backend().name().c_str());
  std::fprintf(stderr, "prefill:  %lld tokens in %.2f ms (%.1f tokens/s)\n", static_cast<long long>(timing.prefilled),
               timing.prefill_ns * 1e-6, per_s(timing.prefilled, timing.prefill_ns));
  std::fprintf(stderr, "decode:   %lld tokens generated, %lld decode steps in %.2f ms (%.1f tokens/s, %.3f ms/token); "
               "sampling %.3f ms/token\n",
               static_cast<long long>(timing.generated), static_cast<long long>(timing.decoded), timing.decode_ns * 1e-6,
               per_s(timing.decoded, timing.decode_ns),
               timing.decoded ? timing.decode_ns * 1e-6 / static_cast<double>(timing.decoded) : 0.0,
               timing.generated ? timing.sample_ns * 1e-6 / static_cast<double>(timing.generated) : 0.0);
  std::fprintf(stderr, "state:    %s bytes per sequence, constant in the context length; context %lld tokens (%lld "
               "consumed + 1 pending)\n",
               group_digits(static_cast<int64_t>(c.state.bytes_per_sequence())).c_str(),
               static_cast<long long>(c.state.positions()[0] + 1), static_cast<long long>(c.state.positions()[0]));
  const SamplerParams& sp = gp.sampling;
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
      "prefilled in chunks, then up to -n tokens are sampled one at a time and streamed to stdout as they are\n"
      "made; generation stops early at the model's <eos> (when it has one) or a --stop string. A new context\n"
      "starts with <bos> when the model has one. A summary (prefill and decode speed, state size, seed) goes to\n"
      "stderr. --state-out saves the context so that --state-in continues it exactly. -i keeps a conversation:\n"
      "each line typed on stdin is a turn (Ctrl-D ends). --prompts runs a JSONL file of prompts as one\n"
      "continuous batch, as `longvq serve` does, and writes one JSONL result per prompt, in input order.");
  add_model_flags(*app, o->model);
  auto* prompt = app->add_option("-p,--prompt", o->prompt, "Prompt text")->type_name("TEXT");
  auto* file = app->add_option("-f,--file", o->file, "Read the prompt from FILE ('-' = stdin)")->type_name("FILE");
  prompt->excludes(file);
  app->add_option("-n,--n-predict", o->n_predict, "Tokens to generate at most (0 = only consume the prompt)")
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
  app->add_option("--stop", o->stop, "Stop when the text contains STR (repeatable); the text before it is kept")
      ->type_name("STR")->take_all();
  app->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the model's <eos>");
  auto* json = app->add_flag("--json", o->json, "Print one JSON object at the end instead of streaming text: the "
                                                "prompt, text, finish_reason, every token (id, text) and usage");
  app->add_option("--logprobs", o->logprobs, "With --json (or --prompts): each token's log-probability and the K "
                                             "most likely alternatives (0: only the chosen token's)")
      ->check(integer_in(0, 20))->type_name("K");
  auto* interactive = app->add_flag("-i,--interactive", o->interactive, "A conversation: after the prompt, each line "
                                                                         "typed is a turn; the state carries across");
  app->add_option("--prompts", o->prompts, "Run the prompts of FILE.jsonl ({\"prompt\", \"id\", and optional "
                                           "max_tokens, seed, temperature, top_k, top_p, min_p, repeat_penalty, "
                                           "stop}) as one continuous batch; results as JSONL")
      ->type_name("FILE")->excludes(interactive)->excludes(json);
  app->add_option("-o,--output", o->output, "With --prompts: write the JSONL results to FILE (atomically) instead of "
                                            "stdout")->type_name("FILE");
  app->add_option("--parallel", o->parallel, "With --prompts: sequences decoding at once (also -np)")
      ->capture_default_str()->check(integer_in(1, 4096));
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
      "  longvq generate -p \"Emma said\" -n 100 --stop . --json --logprobs 3\n"
      "  longvq generate -i -p \"Mr. Knightley\" -n 80 --stop $'\\n'\n"
      "  longvq generate --prompts prompts.jsonl -o results.jsonl -np 16\n"
      "  longvq generate -f chapter1.txt -n 0 --state-out ch1.state     # cache a long prompt once\n"
      "  longvq generate --state-in ch1.state -p \"Chapter 2\" -n 300     # ... and continue it later");
  return {app, [o, app] { return run_generate(*o, *app); }};
}

}  // namespace longvq::cli
