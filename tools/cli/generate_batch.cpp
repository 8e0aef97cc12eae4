#include "tools/cli/generate_batch.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/serving/scheduler.h"
#include "engine/text/tokenizer.h"
#include "loaders/atomic_file.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

namespace {

using json = nlohmann::ordered_json;

struct Line {
  json id;
  std::string prompt;
  std::shared_ptr<Job> job;
};

// A JSONL line's prompt and parameters, over the command line's defaults; InputError names
// FILE:LINE and the field.
Line parse_line(const std::string& text, const std::string& where, const BatchOptions& o, const Tokenizer& tok,
                uint64_t index, GenerationParams& gp) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(where + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw InputError(where + ": each line must be a JSON object like {\"prompt\": \"...\"}");
  static const std::set<std::string> known = {"prompt", "id", "max_tokens", "seed", "temperature", "top_k",
                                              "top_p", "min_p", "repeat_penalty", "stop"};
  for (const auto& [k, v] : j.items())
    if (!known.count(k))
      throw InputError(where + ": unknown key \"" + k + "\"; the keys are prompt, id, max_tokens, seed, temperature, "
                               "top_k, top_p, min_p, repeat_penalty, stop");
  if (!j.contains("prompt") || !j["prompt"].is_string()) throw InputError(where + ": \"prompt\" (a string) is required");
  Line line;
  line.id = j.contains("id") ? j["id"] : json(nullptr);
  line.prompt = j["prompt"].get<std::string>();
  auto number = [&](const char* key, double lo, double hi, double def) {
    if (!j.contains(key)) return def;
    if (!j[key].is_number()) throw InputError(where + ": \"" + key + "\" must be a number");
    const double v = j[key].get<double>();
    if (!(v >= lo && v <= hi))
      throw InputError(where + ": \"" + key + "\" is " + j[key].dump() + "; it must be between " + strf("%g", lo) +
                       " and " + strf("%g", hi));
    return v;
  };
  auto integer = [&](const char* key, int64_t lo, int64_t hi, int64_t def) {
    if (!j.contains(key)) return def;
    if (!j[key].is_number_integer()) throw InputError(where + ": \"" + key + "\" must be an integer");
    const int64_t v = j[key].get<int64_t>();
    if (v < lo || v > hi)
      throw InputError(where + ": \"" + key + "\" is " + std::to_string(v) + "; it must be between " +
                       std::to_string(lo) + " and " + std::to_string(hi));
    return v;
  };
  gp.sampling = o.sampling;
  gp.max_tokens = integer("max_tokens", 0, INT32_MAX, o.max_tokens);
  gp.sampling.temperature = number("temperature", 0, 1e6, o.sampling.temperature);
  gp.sampling.top_k = static_cast<int>(integer("top_k", 0, INT32_MAX, o.sampling.top_k));
  gp.sampling.top_p = number("top_p", 0, 1, o.sampling.top_p);
  gp.sampling.min_p = number("min_p", 0, 1, o.sampling.min_p);
  gp.sampling.repeat_penalty = number("repeat_penalty", 1e-9, 1e6, o.sampling.repeat_penalty);
  const int64_t base = o.seed >= 0 ? o.seed : static_cast<int64_t>(std::random_device{}() >> 1);
  gp.sampling.seed = static_cast<uint64_t>(integer("seed", 0, INT64_MAX, base + static_cast<int64_t>(index)));
  gp.stop = o.stop;
  if (j.contains("stop")) {
    gp.stop.clear();
    const json& s = j["stop"];
    if (s.is_string()) gp.stop.push_back(s.get<std::string>());
    else if (s.is_array() && std::all_of(s.begin(), s.end(), [](const json& x) { return x.is_string(); }))
      for (const json& x : s) gp.stop.push_back(x.get<std::string>());
    else throw InputError(where + ": \"stop\" must be a string or an array of strings");
  }
  gp.stop_at_eos = !o.ignore_eos;
  gp.logprobs = o.logprobs;
  gp.utf8 = true;
  try {
    (void)tok.encode(line.prompt);
  } catch (const std::exception& e) {
    throw InputError(where + ": the prompt cannot be tokenized: " + e.what());
  }
  return line;
}

json result_json(const Tokenizer& tok, const Line& line, size_t index, int logprobs) {
  const Job& job = *line.job;
  json r = {{"index", index}, {"id", line.id}, {"text", to_valid_utf8(job.text())},
            {"finish_reason", finish_reason_name(job.finish_reason())},
            {"usage", {{"prompt_tokens", job.prompt_tokens()}, {"completion_tokens", job.completion_tokens()}}}};
  if (job.finish_reason() == FinishReason::error) r["error"] = job.error();
  if (logprobs >= 0) {
    json toks = json::array();
    for (const TokenInfo& t : job.tokens()) {
      json k = {{"id", t.id}, {"text", to_valid_utf8(t.piece)}, {"logprob", t.logprob}};
      if (logprobs > 0) {
        json top = json::object();
        for (const auto& [id, lp] : t.top) top[to_valid_utf8(tok.decode(std::span<const int32_t>(&id, 1)))] = lp;
        k["top_logprobs"] = top;
      }
      toks.push_back(k);
    }
    r["tokens"] = toks;
  }
  return r;
}

}  // namespace

int run_generate_batch(const BatchOptions& o) {
  if (!o.output.empty()) check_output_path("-o", o.output, {{"--prompts", o.prompts}});
  const std::string text = read_input(o.prompts, o.max_input_bytes);
  const std::string name = input_name(o.prompts);
  auto model = load_model(o.model);
  const ModelConfig& cfg = model->config();
  if (cfg.task != ModelConfig::Task::lm)
    throw std::runtime_error(model->dir().string() + " is a classifier; generate needs a causal language model");
  Tokenizer tok(cfg.tokenizer);

  // Every line is checked before anything runs: a bad line 9,000 must not waste the first 8,999.
  std::vector<Line> lines;
  std::istringstream in(text);
  std::string raw;
  for (int64_t n = 1; std::getline(in, raw); ++n) {
    if (raw.find_first_not_of(" \t\r") == std::string::npos) continue;
    GenerationParams gp;
    Line line = parse_line(raw, name + ":" + std::to_string(n), o, tok, lines.size(), gp);
    line.job = std::make_shared<Job>();
    line.job->prompt = tok.encode(line.prompt);
    if (static_cast<int64_t>(line.job->prompt.size()) > o.max_prompt)
      throw InputError(name + ":" + std::to_string(n) + ": the prompt has " + group_digits(static_cast<int64_t>(
                           line.job->prompt.size())) + " tokens, more than --max-prompt " + group_digits(o.max_prompt));
    line.job->params = gp;
    lines.push_back(std::move(line));
  }
  if (lines.empty()) throw InputError(name + ": no prompts (one JSON object per line: {\"prompt\": \"...\"})");

  SchedulerOptions so;
  so.slots = std::min<int64_t>(o.parallel, static_cast<int64_t>(lines.size()));
  so.max_chunk = o.chunk;
  so.prefill_budget = std::max<int64_t>(o.chunk, 512);
  so.max_queue = static_cast<int64_t>(lines.size());
  so.threads = o.model.threads;
  Scheduler scheduler(model, tok, so);
  for (const Line& l : lines) scheduler.submit(l.job);

  // In input order, each as soon as it and those before it are done.
  std::optional<AtomicFile> file;
  if (!o.output.empty()) file.emplace(o.output);
  int64_t failed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    lines[i].job->wait();
    failed += lines[i].job->finish_reason() == FinishReason::error;
    const std::string out = result_json(tok, lines[i], i, o.logprobs).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (file) file->write(out);
    else if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
      throw std::runtime_error("could not write the output (stdout)");
    lines[i].job.reset();  // its tokens are written: free them
  }
  if (file) file->commit();
  const auto st = scheduler.stats();
  std::fprintf(stderr, "generate --prompts: %zu prompts, %lld prompt tokens, %lld generated, %lld slots%s\n",
               lines.size(), static_cast<long long>(st.prompt_tokens), static_cast<long long>(st.completion_tokens),
               static_cast<long long>(so.slots), failed ? (", " + std::to_string(failed) + " failed").c_str() : "");
  return failed ? kExitFailure : kExitOk;
}

}  // namespace longvq::cli
