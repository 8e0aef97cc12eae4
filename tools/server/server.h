// `longvq serve`: an OpenAI-compatible HTTP server (cpp-httplib) over the serving library. The
// HTTP layer is thin: it parses requests (api.h), hands completions to the Scheduler (continuous
// batching) and streams what it says back; sessions live in a SessionStore.
//
//   POST   /v1/completions        OpenAI completions (+ top_k, min_p, repeat_penalty, session_id)
//   POST   /v1/classify           classifier models: {"inputs": [{"text"|"tokens"|"pixels", "id"}]}
//   POST   /v1/sessions           a new session ({"id": "name"} optional) → {"id"}
//   GET    /v1/sessions/{id}      whether it exists and where it is held
//   DELETE /v1/sessions/{id}
//   GET    /health, /v1/models, /metrics (Prometheus text)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/runtime/model.h"

namespace longvq::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int64_t parallel = 16;         // -np: decode slots
  int threads = 0;               // CPU threads of the engine
  int64_t http_threads = 0;      // 0: 4 × parallel + 16
  int64_t ctx_size = 0;          // -c: longest context of a session or request (0: unlimited)
  int64_t n_predict = 4096;      // -n: the most max_tokens a request may ask for
  int64_t max_prompt = 1 << 20;  // prompt tokens per request
  int64_t max_length = 65536;    // classifier input length
  int64_t max_inputs = 1024;     // classifier inputs per request
  int64_t max_body = 8 << 20;    // request body bytes
  int64_t max_queue = 0;         // waiting requests (0: 4 × parallel)
  int64_t chunk = 256;           // prefill tokens per row per step
  int64_t prefill_budget = 512;  // prefill tokens per step over all rows
  double timeout = 600;          // seconds per request
  double grace = 10;             // seconds to finish in-flight requests at SIGTERM/SIGINT
  std::string api_key;
  std::string session_dir;       // "" = sessions in memory only
  int64_t session_memory = int64_t{1} << 30;  // bytes of sessions held in memory
  std::string session_store;     // redis://HOST:PORT[/DB]: sessions in Redis instead (any replica resumes any)
  double session_ttl = 86400;    // seconds a session in Redis lives unused
  double session_lock_ttl = 10;  // seconds a dead replica's hold on a session lasts
  bool verbose = false;
};

// Runs until SIGTERM/SIGINT; returns the exit code (0 after a clean shutdown). Throws on a
// start-up failure (model, port).
int run_server(std::shared_ptr<const Model> model, const ServerOptions& options);

}  // namespace longvq::server
