// longvq serve: the OpenAI-compatible HTTP server (tools/server), with llama-server's flags.
#include <CLI/CLI.hpp>

#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/server/server.h"

namespace longvq::cli {

Command add_serve(CLI::App& root) {
  auto o = std::make_shared<server::ServerOptions>();
  auto flags = std::make_shared<ModelFlags>();
  CLI::App* app = root.add_subcommand("serve", "Serve the model over HTTP: OpenAI-style /v1/completions with "
                                               "continuous batching, sessions, /v1/classify, /metrics");
  app->description(app->get_description() + ".\n\n" +
      "An OpenAI-compatible completions server. Every running request is one row of a batched decoding state,\n"
      "so -np requests decode in one step while new ones are prefilled in chunks between steps. A whole\n"
      "conversation is a fixed-size state: continue one by sending its \"session_id\" (create it with\n"
      "POST /v1/sessions), and the request sends only the new text. Sessions stay in memory up to\n"
      "--session-memory, then go to --session-dir (which also keeps them across restarts).\n"
      "SIGTERM/SIGINT: stop accepting, finish the running requests (up to --grace s), save sessions, exit 0.");
  add_model_flags(*app, *flags);
  app->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->port, "Port to listen on (0: any free port, printed at start)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app->add_option("--parallel", o->parallel, "Decode slots: requests generating at once (also -np)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app->add_option("-c,--ctx-size", o->ctx_size, "Refuse requests whose prompt + max_tokens exceed N tokens; 0 = no "
                                                "limit (a LongVQ context has a fixed-size state)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("-n,--n-predict", o->n_predict, "The most max_tokens a request may ask for")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app->add_option("--max-prompt", o->max_prompt, "The most prompt tokens a request may send")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app->add_option("--max-body", o->max_body, "The largest request body, in bytes (413 above)")
      ->capture_default_str()->check(CLI::Range(int64_t{1024}, int64_t{1} << 40));
  app->add_option("--queue", o->max_queue, "Requests that may wait for a slot before new ones get 429 (0: 4 × "
                                           "--parallel)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("--chunk", o->chunk, "Prompt tokens a request prefills per step")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--prefill-budget", o->prefill_budget, "Prompt tokens prefilled per step over all requests "
                                                         "(the rest waits: decoding never stalls behind a long prompt)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app->add_option("--timeout", o->timeout, "Seconds a request may run (then 504)")
      ->capture_default_str()->check(CLI::Range(0.001, 1e7));
  app->add_option("--grace", o->grace, "Seconds to finish running requests at SIGTERM/SIGINT")
      ->capture_default_str()->check(CLI::Range(0.0, 1e6));
  app->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on every endpoint but /health")
      ->type_name("KEY");
  app->add_option("--session-dir", o->session_dir, "Keep sessions beyond --session-memory here, and across restarts "
                                                   "(atomic writes)")->type_name("DIR");
  app->add_option("--session-memory", o->session_memory, "Bytes of sessions held in memory")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app->add_option("--session-store", o->session_store, "Keep sessions in Redis instead (redis://HOST:PORT[/DB]): "
                                                       "every replica behind a load balancer resumes every session")
      ->type_name("URL");
  app->add_option("--session-ttl", o->session_ttl, "Seconds a session in --session-store lives unused")
      ->capture_default_str()->check(CLI::Range(1.0, 1e9));
  app->add_option("--session-lock-ttl", o->session_lock_ttl, "Seconds a replica's hold on a session in "
                                                              "--session-store outlives the replica (refreshed while "
                                                              "it runs)")
      ->capture_default_str()->check(CLI::Range(0.1, 1e6));
  app->add_option("--http-threads", o->http_threads, "HTTP worker threads (0: 4 × --parallel + 16; each streaming "
                                                     "request holds one)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("--max-length", o->max_length, "Classifiers: the longest input")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app->add_option("--max-inputs", o->max_inputs, "Classifiers: inputs per request")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->footer(
      "Examples:\n"
      "  longvq serve -m models/austen-lm --port 8080 -np 16\n"
      "  curl -s localhost:8080/v1/completions -d '{\"prompt\": \"It is a truth\", \"max_tokens\": 40}'\n"
      "  curl -sN localhost:8080/v1/completions -d '{\"prompt\": \"Emma\", \"max_tokens\": 40, \"stream\": true}'\n"
      "  curl -s -X POST localhost:8080/v1/sessions -d '{\"id\": \"chat1\"}'\n"
      "  curl -s localhost:8080/v1/completions -d '{\"prompt\": \"Hello\", \"session_id\": \"chat1\"}'\n"
      "  curl -s localhost:8080/metrics");
  return {app, [o, flags] {
            server::ServerOptions opts = *o;
            opts.threads = flags->threads;
            opts.verbose = flags->verbose;
            return server::run_server(load_model(*flags), opts);
          }};
}

}  // namespace longvq::cli
