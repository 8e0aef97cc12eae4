// The HTTP API's requests and responses, without the HTTP: OpenAI's /v1/completions (plus
// llama.cpp's sampling extras and the session_id extension) and /v1/classify, parsed and
// validated into engine terms, and the JSON / Server-Sent Events that answer them. Pure
// functions, so the parser is fuzzed (tests/fuzz/fuzz_request.cpp) and tested without a socket.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/serving/generation.h"
#include "engine/text/tokenizer.h"
#include "loaders/config.h"

namespace longvq::server {

// A request the server refuses: HTTP status, OpenAI-style error type, message and the field.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string type = "");
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }
  nlohmann::json body() const;  // {"error": {"message", "type", "param", "code"}}

 private:
  int status_;
  std::string param_, type_;
};

struct Limits {
  int64_t max_prompt_tokens = 1 << 20;
  int64_t max_tokens = 4096;  // the most a request may ask for (-n)
};

struct CompletionRequest {
  std::vector<int32_t> prompt;  // token ids
  std::string prompt_text;      // as given (echo); empty for a token-id prompt
  GenerationParams params;      // utf8 on
  bool stream = false;
  bool echo = false;
  bool include_usage = false;   // stream_options.include_usage
  std::string session_id;       // "" = none
  std::string user;
};

// Parses and validates a /v1/completions body. Throws ApiError (400) naming the field.
CompletionRequest parse_completion(const std::string& body, const Tokenizer& tok, const ModelConfig& config,
                                   const Limits& limits);

struct ClassifyInput {
  nlohmann::json id;  // echoed back (null when absent)
  std::vector<int32_t> tokens;
  std::vector<float> values;  // real inputs (pixels, normalized)
};
// Parses a /v1/classify body: {"inputs": [{"text"|"tokens"|"pixels": ..., "id": ...}, ...]}.
std::vector<ClassifyInput> parse_classify(const std::string& body, const Tokenizer& tok, const ModelConfig& config,
                                          int64_t max_inputs, int64_t max_length);

// "cmpl-…" ids, "created" times and the model name every completion response carries.
struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
};

// The logprobs object of OpenAI's completions API for these tokens (text_offset from `offset`).
nlohmann::json logprobs_json(const Tokenizer& tok, const std::vector<TokenInfo>& tokens, int top, size_t offset,
                             bool first_is_null);

// One choice of a streamed completion: `data: {...}\n\n`.
std::string sse_event(const nlohmann::json& data);

// JSON text, with invalid UTF-8 (never produced by the stream, but e.g. an echoed prompt) replaced.
std::string dump(const nlohmann::json& j);

const char* openai_finish_reason(FinishReason r);  // "stop" | "length" (others map to "stop")

}  // namespace longvq::server
