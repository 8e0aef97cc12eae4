#include "tools/server/api.h"

#include <cmath>
#include <random>
#include <set>

namespace longvq::server {

namespace {

using json = nlohmann::json;

const char* default_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// Typed field readers: the value or the default when absent or null; a wrong type or a value
// out of range is a 400 naming the field and the allowed range.
double number(const json& o, const char* key, double def, double lo, double hi) {
  if (!o.contains(key) || o[key].is_null()) return def;
  const json& v = o[key];
  if (!v.is_number()) bad(key, std::string("'") + key + "' must be a number, not " + type_name(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    char range[96];
    std::snprintf(range, sizeof range, "%g to %g", lo, hi);
    bad(key, std::string("'") + key + "' is " + v.dump() + "; it must be between " + range);
  }
  return x;
}

int64_t integer(const json& o, const char* key, int64_t def, int64_t lo, int64_t hi) {
  if (!o.contains(key) || o[key].is_null()) return def;
  const json& v = o[key];
  if (!v.is_number_integer())
    bad(key, std::string("'") + key + "' must be an integer, not " + (v.is_number() ? v.dump() : type_name(v)));
  const bool neg = v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0;
  if (!neg && v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(key, std::string("'") + key + "' is " + v.dump() + "; it must be between " + std::to_string(lo) + " and " +
                 std::to_string(hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad(key, std::string("'") + key + "' is " + v.dump() + "; it must be between " + std::to_string(lo) + " and " +
                 std::to_string(hi));
  return x;
}

bool boolean(const json& o, const char* key, bool def) {
  if (!o.contains(key) || o[key].is_null()) return def;
  if (!o[key].is_boolean()) bad(key, std::string("'") + key + "' must be true or false, not " + type_name(o[key]));
  return o[key].get<bool>();
}

std::string string(const json& o, const char* key) {
  if (!o.contains(key) || o[key].is_null()) return "";
  if (!o[key].is_string()) bad(key, std::string("'") + key + "' must be a string, not " + type_name(o[key]));
  return o[key].get<std::string>();
}

json parse_object(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object, not " + type_name(j));
  return j;
}

// Fields OpenAI clients send that this server takes only at their neutral value.
void check_neutral(const json& o) {
  auto must = [&](const char* key, const json& neutral, const char* why) {
    if (o.contains(key) && !o[key].is_null() && o[key] != neutral)
      bad(key, std::string("'") + key + "' = " + o[key].dump() + " is not supported: " + why);
  };
  must("n", 1, "one completion per request; send several requests");
  must("best_of", 1, "one completion per request");
  must("frequency_penalty", 0, "use repeat_penalty (llama.cpp's) instead");
  must("presence_penalty", 0, "use repeat_penalty (llama.cpp's) instead");
  must("suffix", "", "this model only continues text");
  if (o.contains("logit_bias") && !o["logit_bias"].is_null() && !o["logit_bias"].empty())
    bad("logit_bias", "'logit_bias' is not supported");
}

}  // namespace

ApiError::ApiError(int status, std::string message, std::string param, std::string type)
    : std::runtime_error(std::move(message)), status_(status), param_(std::move(param)),
      type_(type.empty() ? default_type(status) : std::move(type)) {}

json ApiError::body() const {
  return {{"error",
           {{"message", what()}, {"type", type_}, {"param", param_.empty() ? json(nullptr) : json(param_)}, {"code", nullptr}}}};
}

CompletionRequest parse_completion(const std::string& body, const Tokenizer& tok, const ModelConfig& config,
                                   const Limits& limits) {
  const json o = parse_object(body);
  static const std::set<std::string> known = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repeat_last_n",
      "seed", "stop", "stream", "stream_options", "logprobs", "echo", "user", "session_id", "n", "best_of",
      "frequency_penalty", "presence_penalty", "suffix", "logit_bias"};
  for (const auto& [key, value] : o.items())
    if (!known.count(key))
      bad(key, "unknown field '" + key + "'; the fields are: model, prompt, max_tokens, temperature, top_p, top_k, "
                   "min_p, repeat_penalty, repeat_last_n, seed, stop, stream, stream_options, logprobs, echo, user, "
                   "session_id");
  check_neutral(o);
  if (config.task != ModelConfig::Task::lm)
    throw ApiError(400, "this model is a classifier; use POST /v1/classify", "model");

  CompletionRequest r;
  // prompt: a string, an array of one string, or an array of token ids.
  if (!o.contains("prompt") || o["prompt"].is_null()) bad("prompt", "'prompt' is required (a string)");
  const json& p = o["prompt"];
  if (p.is_string()) {
    r.prompt_text = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    r.prompt_text = p[0].get<std::string>();
  } else if (p.is_array() && (p.empty() || p[0].is_number())) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_number_integer() || p[i].get<int64_t>() < 0 || p[i].get<int64_t>() >= config.vocab_size)
        bad("prompt", "'prompt'[" + std::to_string(i) + "] = " + p[i].dump() + " is not a token id 0.." +
                          std::to_string(config.vocab_size - 1));
      r.prompt.push_back(p[i].get<int32_t>());
    }
  } else if (p.is_array()) {
    bad("prompt", "'prompt' holds " + std::to_string(p.size()) + " strings; send one prompt per request");
  } else {
    bad("prompt", "'prompt' must be a string or an array of token ids, not " + type_name(p));
  }
  if (!r.prompt_text.empty()) {
    try {
      r.prompt = tok.encode(r.prompt_text);
    } catch (const std::exception& e) {
      bad("prompt", std::string("'prompt' cannot be tokenized: ") + e.what());
    }
  }
  if (static_cast<int64_t>(r.prompt.size()) > limits.max_prompt_tokens)
    bad("prompt", "the prompt has " + std::to_string(r.prompt.size()) + " tokens, more than this server takes (" +
                      std::to_string(limits.max_prompt_tokens) + ", --max-prompt); shorten it or continue a session "
                      "in several requests");

  SamplerParams& s = r.params.sampling;
  r.params.max_tokens = integer(o, "max_tokens", 16, 0, limits.max_tokens);
  s.temperature = number(o, "temperature", 1.0, 0.0, 100.0);
  s.top_p = number(o, "top_p", 1.0, 0.0, 1.0);
  s.top_k = static_cast<int>(integer(o, "top_k", 0, 0, 1 << 30));
  s.min_p = number(o, "min_p", 0.0, 0.0, 1.0);
  s.repeat_penalty = number(o, "repeat_penalty", 1.0, 1e-6, 100.0);
  s.repeat_last_n = static_cast<int>(integer(o, "repeat_last_n", 64, 0, 1024));
  const int64_t seed = integer(o, "seed", -1, 0, INT64_MAX);  // absent: a random one (as llama-server)
  s.seed = seed >= 0 ? static_cast<uint64_t>(seed) : (uint64_t{std::random_device{}()} << 31) ^ std::random_device{}();
  if (o.contains("stop") && !o["stop"].is_null()) {
    const json& st = o["stop"];
    if (st.is_string()) {
      r.params.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > 16) bad("stop", "'stop' holds " + std::to_string(st.size()) + " strings; at most 16");
      for (const json& x : st) {
        if (!x.is_string()) bad("stop", "'stop' must be a string or an array of strings");
        r.params.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of strings, not " + type_name(st));
    }
    for (const std::string& x : r.params.stop)
      if (x.empty() || x.size() > 256) bad("stop", "each stop string must have 1 to 256 bytes");
  }
  r.stream = boolean(o, "stream", false);
  r.echo = boolean(o, "echo", false);
  if (o.contains("stream_options") && !o["stream_options"].is_null()) {
    const json& so = o["stream_options"];
    if (!so.is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(so, "include_usage", false);
  }
  r.params.logprobs = static_cast<int>(integer(o, "logprobs", -1, 0, 20));
  r.user = string(o, "user");
  (void)string(o, "model");  // any name: this server runs one model
  r.session_id = string(o, "session_id");
  r.params.utf8 = true;
  return r;
}

std::vector<ClassifyInput> parse_classify(const std::string& body, const Tokenizer& tok, const ModelConfig& config,
                                          int64_t max_inputs, int64_t max_length) {
  const json o = parse_object(body);
  for (const auto& [key, value] : o.items())
    if (key != "inputs" && key != "model") bad(key, "unknown field '" + key + "'; the fields are: inputs, model");
  if (config.task != ModelConfig::Task::classify)
    throw ApiError(400, "this model is a language model; use POST /v1/completions", "model");
  if (!o.contains("inputs") || !o["inputs"].is_array() || o["inputs"].empty())
    bad("inputs", "'inputs' must be a non-empty array of objects like {\"text\": \"...\"}, {\"tokens\": [...]} or "
                  "{\"pixels\": [...]}, each with an optional \"id\"");
  const json& in = o["inputs"];
  if (static_cast<int64_t>(in.size()) > max_inputs)
    bad("inputs", std::to_string(in.size()) + " inputs in one request; this server takes at most " +
                      std::to_string(max_inputs) + " (--max-inputs): split them");
  const bool real = config.embedding.kind == EmbeddingConfig::Kind::real;
  std::vector<ClassifyInput> out;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string where = "inputs[" + std::to_string(i) + "]";
    const json& x = in[i];
    if (!x.is_object()) bad(where, where + " must be an object, not " + type_name(x));
    ClassifyInput c;
    int kinds = 0;
    for (const auto& [key, value] : x.items()) {
      if (key == "id") c.id = value;
      else if (key == "tokens" || key == "text" || key == "pixels") ++kinds;
      else bad(where, where + " has an unknown field '" + key + "'; give one of \"tokens\", \"text\", \"pixels\" and an optional \"id\"");
    }
    if (kinds != 1) bad(where, where + (kinds ? " gives more than one of" : " gives none of") + " \"tokens\", \"text\", \"pixels\"");
    if (x.contains("pixels")) {
      if (!real) bad(where, where + ": this model takes tokens: use \"tokens\" or \"text\"");
      const json& p = x["pixels"];
      if (!p.is_array()) bad(where, where + ": \"pixels\" must be an array of integers 0..255");
      for (size_t k = 0; k < p.size(); ++k) {
        if (!p[k].is_number_integer() || p[k].get<int64_t>() < 0 || p[k].get<int64_t>() > 255)
          bad(where, where + ": \"pixels\"[" + std::to_string(k) + "] = " + p[k].dump() + " is not an integer 0..255");
        c.values.push_back(tok.normalize(static_cast<uint8_t>(p[k].get<int64_t>())));
      }
    } else {
      if (real) bad(where, where + ": this model takes pixel values: use \"pixels\"");
      if (x.contains("text")) {
        if (!x["text"].is_string()) bad(where, where + ": \"text\" must be a string");
        try {
          c.tokens = tok.encode(x["text"].get<std::string>());
        } catch (const std::exception& e) {
          bad(where, where + ": " + e.what());
        }
      } else {
        const json& t = x["tokens"];
        if (!t.is_array()) bad(where, where + ": \"tokens\" must be an array of token ids");
        for (size_t k = 0; k < t.size(); ++k) {
          if (!t[k].is_number_integer() || t[k].get<int64_t>() < 0 || t[k].get<int64_t>() >= config.vocab_size)
            bad(where, where + ": \"tokens\"[" + std::to_string(k) + "] = " + t[k].dump() + " is not a token id 0.." +
                           std::to_string(config.vocab_size - 1));
          c.tokens.push_back(t[k].get<int32_t>());
        }
      }
    }
    const size_t len = real ? c.values.size() : c.tokens.size();
    if (len == 0) bad(where, where + " is empty; give at least one token or pixel");
    if (static_cast<int64_t>(len) > max_length)
      bad(where, where + " has " + std::to_string(len) + " elements, more than this server takes (" +
                     std::to_string(max_length) + ", --max-length)");
    out.push_back(std::move(c));
  }
  return out;
}

json logprobs_json(const Tokenizer& tok, const std::vector<TokenInfo>& tokens, int top, size_t offset,
                   bool first_is_null) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenInfo& t = tokens[i];
    toks.push_back(to_valid_utf8(t.piece));
    const bool none = first_is_null && i == 0;
    lps.push_back(none ? json(nullptr) : json(t.logprob));
    if (top > 0) {
      if (none) {
        tops.push_back(nullptr);
      } else {
        json m = json::object();
        for (const auto& [id, lp] : t.top) m[to_valid_utf8(tok.decode(std::span<const int32_t>(&id, 1)))] = lp;
        tops.push_back(m);
      }
    }
    offs.push_back(offset);
    offset += t.piece.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", top > 0 ? tops : json(nullptr)}, {"text_offset", offs}};
}

std::string sse_event(const json& data) { return "data: " + dump(data) + "\n\n"; }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

const char* openai_finish_reason(FinishReason r) { return r == FinishReason::length ? "length" : "stop"; }

}  // namespace longvq::server
