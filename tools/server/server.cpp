#include "tools/server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "engine/serving/scheduler.h"
#include "engine/serving/session_store.h"
#include "tools/server/api.h"
#include "tools/server/classify_endpoint.h"
#include "tools/server/redis_session_store.h"

namespace longvq::server {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Requests answered, by endpoint and status, for /metrics.
class RequestCounter {
 public:
  void add(const std::string& endpoint, int status) {
    std::lock_guard lock(mu_);
    ++counts_[{endpoint, status}];
  }
  std::string prometheus() const {
    std::lock_guard lock(mu_);
    std::string s = "# HELP longvq_requests_total Requests answered, by endpoint and HTTP status.\n"
                    "# TYPE longvq_requests_total counter\n";
    for (const auto& [k, n] : counts_)
      s += "longvq_requests_total{endpoint=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
           std::to_string(n) + "\n";
    return s;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> counts_;
};

// The route a path belongs to (bounded label values: ids are not labels).
std::string endpoint_of(const std::string& path) {
  for (const char* p : {"/v1/completions", "/v1/classify", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  if (path.rfind("/v1/sessions", 0) == 0) return "/v1/sessions";
  return "other";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(dump(e.body()), "application/json");
}

std::string gauge(const char* name, const char* help, double v) {
  char line[64];
  std::snprintf(line, sizeof line, "%.17g", v);
  return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + line + "\n";
}
std::string counter(const char* name, const char* help, double v) {
  char line[64];
  std::snprintf(line, sizeof line, "%.17g", v);
  return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + line + "\n";
}

// Debian's cpp-httplib is compiled with a listen backlog of 5, so a burst of new connections
// overflows it and clients see resets. Listening again on the same socket raises the backlog
// (Linux); the library keeps no way to reach its socket, so find it: the listening socket bound
// to our port.
void raise_listen_backlog(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    const int bound = addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                      : addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                                   : -1;
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

class Server {
 public:
  Server(std::shared_ptr<const Model> model, const ServerOptions& o) : o_(o), model_(std::move(model)) {
    tok_.emplace(model_->config().tokenizer);
    name_ = model_->dir().filename().empty() ? model_->dir().parent_path().filename().string()
                                             : model_->dir().filename().string();
    limits_.max_prompt_tokens = o.max_prompt;
    limits_.max_tokens = o.n_predict;
    if (model_->config().task == ModelConfig::Task::lm) {
      store_session_.emplace(model_, SessionOptions{.threads = 1});
      if (!o.session_store.empty())
        store_ = std::make_unique<RedisSessionStore>(
            *model_, store_session_->backend(), parse_redis_url(o.session_store),
            std::chrono::seconds(static_cast<int64_t>(o.session_ttl)),
            std::chrono::milliseconds(static_cast<int64_t>(o.session_lock_ttl * 1000)));
      else
        store_ = std::make_unique<LocalSessionStore>(*model_, store_session_->backend(),
                                                     static_cast<size_t>(o.session_memory), o.session_dir);
      state_bytes_ = static_cast<int64_t>(store_session_->new_state(1).bytes_per_sequence());
      SchedulerOptions so;
      so.slots = o.parallel;
      so.max_chunk = o.chunk;
      so.prefill_budget = o.prefill_budget;
      so.max_queue = o.max_queue > 0 ? o.max_queue : 4 * o.parallel;
      so.threads = o.threads;
      so.sessions = store_.get();
      scheduler_.emplace(model_, *tok_, so);
    } else {
      classifier_.emplace(model_, *tok_, ClassifyEndpoint::Limits{o.threads, o.parallel, o.max_length, o.max_inputs});
    }
    routes();
  }

  // Binds, serves until a signal, drains; returns the exit code.
  int run() {
    const int port = o_.port == 0 ? svr_.bind_to_any_port(o_.host) : (svr_.bind_to_port(o_.host, o_.port) ? o_.port : -1);
    if (port < 0)
      throw std::runtime_error("cannot listen on " + o_.host + ":" + std::to_string(o_.port) +
                               " (in use, or not an address of this machine); pick another with --port/--host");
    raise_listen_backlog(port);
    std::fprintf(stderr, "longvq serve: %s (%s) on %s, %lld slots; listening on http://%s:%d\n", name_.c_str(),
                 model_->config().task == ModelConfig::Task::lm ? "lm" : "classifier",
                 backend_kind_name(model_->options().backend), static_cast<long long>(o_.parallel), o_.host.c_str(), port);
    std::fflush(stderr);
    std::thread signals([this] { wait_for_signal(); });
    svr_.listen_after_bind();
    const bool by_signal = draining_.load();
    if (!by_signal) pthread_kill(signals.native_handle(), SIGTERM);  // stopped by itself: wake the signal thread
    signals.join();
    if (!by_signal) throw std::runtime_error("the HTTP server stopped unexpectedly; see the log above");
    if (store_) store_->persist_all();
    std::fprintf(stderr, "longvq serve: stopped%s\n", o_.session_dir.empty() ? "" : ("; sessions saved in " + o_.session_dir).c_str());
    return 0;
  }

 private:
  void wait_for_signal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "longvq serve: %s: no new requests; finishing the running ones (up to %g s)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", o_.grace);
    draining_ = true;
    if (scheduler_) scheduler_->drain(std::chrono::milliseconds(static_cast<int64_t>(o_.grace * 1000)));
    // The handlers now flush their last events; give them a moment before the sockets close.
    for (int i = 0; i < 100 && streams_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    svr_.stop();
  }

  void routes() {
    svr_.new_task_queue = [n = o_.http_threads > 0 ? o_.http_threads : 4 * o_.parallel + 16] {
      return new httplib::ThreadPool(static_cast<size_t>(n));
    };
    svr_.set_payload_max_length(static_cast<size_t>(o_.max_body));
    svr_.set_read_timeout(30);
    svr_.set_write_timeout(30);
    svr_.set_keep_alive_timeout(30);
    svr_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + o_.api_key) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' with the "
                                    "key the server was started with (--api-key)"));
      return httplib::Server::HandlerResponse::Handled;
    });
    svr_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        send_error(res, ApiError(413, "the request body is larger than this server takes (--max-body)"));
      else if (res.status == 404)
        send_error(res, ApiError(404, "no such endpoint: " + req.method + " " + req.path +
                                          "; see GET /v1/models, POST /v1/completions, POST /v1/classify"));
      else
        send_error(res, ApiError(res.status, "request failed (HTTP " + std::to_string(res.status) + ")"));
    });
    svr_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const StoreUnavailable& e) {
        res.set_header("Retry-After", "1");
        send_error(res, ApiError(503, e.what()));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
      }
    });
    svr_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      requests_.add(endpoint_of(req.path), res.status);
      if (o_.verbose) std::fprintf(stderr, "%s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

    svr_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      json j = {{"status", draining_ ? "shutting down" : "ok"}};
      if (scheduler_) {
        const auto st = scheduler_->stats();
        j["slots_idle"] = st.slots - st.busy;
        j["slots_processing"] = st.busy;
        j["queue"] = st.queued;
      }
      res.status = draining_ ? 503 : 200;
      res.set_content(dump(j), "application/json");
    });
    svr_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const ModelConfig& c = model_->config();
      json meta = {{"task", c.task == ModelConfig::Task::lm ? "lm" : "classify"},
                   {"vocab_size", c.vocab_size},
                   {"parameters", model_->parameter_count()},
                   {"backend", backend_kind_name(model_->options().backend)}};
      if (store_session_) meta["state_bytes_per_session"] = state_bytes_;
      res.set_content(dump({{"object", "list"},
                            {"data", json::array({{{"id", name_}, {"object", "model"}, {"created", started_},
                                                   {"owned_by", "longvq"}, {"meta", meta}}})}}),
                      "application/json");
    });
    svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { res.set_content(metrics(), "text/plain; version=0.0.4"); });
    svr_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { completions(req, res); });
    svr_.Post("/v1/classify", [this](const httplib::Request& req, httplib::Response& res) {
      if (!classifier_) throw ApiError(400, "this model is a language model; use POST /v1/completions", "model");
      res.set_content(dump(classifier_->handle(req.body, draining_)), "application/json");
    });
    svr_.Post("/v1/sessions", [this](const httplib::Request& req, httplib::Response& res) { create_session(req, res); });
    svr_.Get(R"(/v1/sessions/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = session_id(req.matches[1]);
      const auto st = store_->reserve(id);
      if (st == SessionStore::Status::missing) throw ApiError(404, "no session '" + id + "'", "id");
      if (st == SessionStore::Status::ok) store_->release(id);
      res.set_content(dump({{"id", id}, {"object", "session"}, {"busy", st == SessionStore::Status::busy}}),
                      "application/json");
    });
    svr_.Delete(R"(/v1/sessions/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = session_id(req.matches[1]);
      switch (store_->remove(id)) {
        case SessionStore::Status::missing: throw ApiError(404, "no session '" + id + "'", "id");
        case SessionStore::Status::busy: throw ApiError(409, "session '" + id + "' is in use by a request; delete it when that ends", "id");
        default: break;
      }
      res.set_content(dump({{"id", id}, {"object", "session"}, {"deleted", true}}), "application/json");
    });
  }

  std::string session_id(const std::string& id) const {
    if (!store_) throw ApiError(400, "this model is a classifier: it has no sessions");
    if (!valid_session_id(id))
      throw ApiError(400, "session ids are 1 to 128 characters of letters, digits, '_', '-' and '.', not starting with '.'", "session_id");
    return id;
  }

  void create_session(const httplib::Request& req, httplib::Response& res) {
    std::string id;
    if (!req.body.empty()) {
      json j;
      try {
        j = json::parse(req.body);
      } catch (const json::exception& e) {
        throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
      }
      if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
      for (const auto& [k, v] : j.items())
        if (k != "id") throw ApiError(400, "unknown field '" + k + "'; the only field is 'id'", k);
      if (j.contains("id") && !j["id"].is_string()) throw ApiError(400, "'id' must be a string", "id");
      if (j.contains("id")) id = j["id"].get<std::string>();
    }
    if (id.empty()) id = "s-" + random_hex();
    if (session_id(id) != id || store_->create(id) == SessionStore::Status::exists)
      throw ApiError(409, "session '" + id + "' exists already; continue it with \"session_id\" or delete it first", "id");
    res.status = 201;
    res.set_content(dump({{"id", id}, {"object", "session"}}), "application/json");
  }

  static std::string random_hex() {
    static std::atomic<uint64_t> counter{0};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%08x%08llx", std::random_device{}(), static_cast<unsigned long long>(++counter));
    return buf;
  }

  void completions(const httplib::Request& req, httplib::Response& res);

  std::string metrics() const {
    std::string s = requests_.prometheus();
    if (scheduler_) {
      const auto st = scheduler_->stats();
      s += counter("longvq_prompt_tokens_total", "Prompt tokens consumed (prefill).", static_cast<double>(st.prompt_tokens));
      s += counter("longvq_generated_tokens_total", "Tokens generated.", static_cast<double>(st.completion_tokens));
      s += gauge("longvq_slots_total", "Decode slots (-np).", static_cast<double>(st.slots));
      s += gauge("longvq_slots_busy", "Slots running a request.", static_cast<double>(st.busy));
      s += gauge("longvq_queue_depth", "Requests waiting for a slot.", static_cast<double>(st.queued));
      const auto ss = store_->stats();
      s += gauge("longvq_sessions_in_memory", "Sessions held in memory.", static_cast<double>(ss.in_memory));
      s += gauge("longvq_sessions_on_disk", "Sessions parked in --session-dir, or held in --session-store.",
                 static_cast<double>(ss.on_disk));
      s += gauge("longvq_sessions_memory_bytes", "Bytes of the sessions held in memory.", static_cast<double>(ss.memory_bytes));
      s += counter("longvq_sessions_evicted_total", "Sessions dropped for the memory budget (no --session-dir).",
                   static_cast<double>(ss.evicted));
      s += counter("longvq_session_store_errors_total", "Session store operations that failed: the store was down.",
                   static_cast<double>(ss.errors));
      s += scheduler_->ttft().prometheus("longvq_time_to_first_token_seconds", "From a request's arrival to its first token.");
      s += scheduler_->inter_token().prometheus("longvq_inter_token_latency_seconds", "Between consecutive tokens of a request.");
    }
    return s;
  }

  ServerOptions o_;
  std::shared_ptr<const Model> model_;
  std::optional<Tokenizer> tok_;
  std::string name_;
  Limits limits_;
  std::optional<Session> store_session_;  // the memory parked sessions live in
  std::unique_ptr<SessionStore> store_;
  std::optional<Scheduler> scheduler_;
  std::optional<ClassifyEndpoint> classifier_;
  httplib::Server svr_;
  RequestCounter requests_;
  std::atomic<bool> draining_{false};
  std::atomic<int> streams_{0};
  const int64_t started_ = static_cast<int64_t>(std::time(nullptr));
  int64_t state_bytes_ = 0;
  std::atomic<uint64_t> next_id_{0};
};

void Server::completions(const httplib::Request& req, httplib::Response& res) {
  if (!scheduler_) throw ApiError(400, "this model is a classifier; use POST /v1/classify", "model");
  CompletionRequest r = parse_completion(req.body, *tok_, model_->config(), limits_);
  if (o_.ctx_size > 0 && static_cast<int64_t>(r.prompt.size()) + r.params.max_tokens > o_.ctx_size)
    throw ApiError(400, "prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_tokens (" +
                            std::to_string(r.params.max_tokens) + ") is more than this server's -c " +
                            std::to_string(o_.ctx_size), "max_tokens");
  auto job = std::make_shared<Job>();
  job->prompt = std::move(r.prompt);
  job->params = r.params;
  job->prompt_logprobs = r.echo && r.params.logprobs >= 0;
  job->deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o_.timeout * 1000));
  if (!r.session_id.empty()) {
    session_id(r.session_id);
    switch (store_->reserve(r.session_id)) {
      case SessionStore::Status::missing:
        throw ApiError(404, "no session '" + r.session_id + "': create it with POST /v1/sessions, or omit session_id",
                       "session_id");
      case SessionStore::Status::busy:
        throw ApiError(409, "session '" + r.session_id + "' is in use by another request; retry when it ends",
                       "session_id");
      default: break;
    }
    job->session = r.session_id;
  }
  try {
    if (draining_) throw std::runtime_error("shutting down");
    scheduler_->submit(job);
  } catch (const QueueFull& e) {
    if (!job->session.empty()) store_->release(job->session);
    res.set_header("Retry-After", "1");
    throw ApiError(429, std::string("the server is busy: ") + e.what());
  } catch (const std::runtime_error&) {
    if (!job->session.empty()) store_->release(job->session);
    throw ApiError(503, "the server is shutting down; retry on another replica");
  }
  const ResponseMeta meta{"cmpl-" + std::to_string(++next_id_) + "-" + random_hex(), name_,
                          static_cast<int64_t>(std::time(nullptr))};
  const std::string echo_text = r.echo ? r.prompt_text : "";
  auto choice_base = [meta](json choice) {
    return json{{"id", meta.id}, {"object", "text_completion"}, {"created", meta.created}, {"model", meta.model},
                {"choices", json::array({std::move(choice)})}};
  };
  auto usage = [job] {
    return json{{"prompt_tokens", job->prompt_tokens()}, {"completion_tokens", job->completion_tokens()},
                {"total_tokens", job->prompt_tokens() + job->completion_tokens()}};
  };
  auto failure = [job]() -> std::optional<ApiError> {
    switch (job->finish_reason()) {
      case FinishReason::error: return ApiError(job->store_unavailable() ? 503 : 500, job->error());
      case FinishReason::timeout: return ApiError(504, "the request ran past the server's --timeout; raise it or ask for fewer tokens");
      case FinishReason::cancelled: return ApiError(503, "the request was cancelled: the server is shutting down");
      default: return std::nullopt;
    }
  };

  if (!r.stream) {
    job->wait();
    if (auto e = failure()) {
      send_error(res, *e);
      return;
    }
    json choice = {{"text", to_valid_utf8(echo_text + job->text())}, {"index", 0}, {"logprobs", nullptr},
                   {"finish_reason", openai_finish_reason(job->finish_reason())}};
    if (r.params.logprobs >= 0) {
      std::vector<TokenInfo> all;
      if (r.echo) all = job->prompt_tokens_info();
      const bool first_null = r.echo && all.size() < job->prompt.size();
      if (first_null) all.insert(all.begin(), TokenInfo{job->prompt.front(), tok_->decode(std::span<const int32_t>(job->prompt.data(), 1)), 0, {}});
      all.insert(all.end(), job->tokens().begin(), job->tokens().end());
      choice["logprobs"] = logprobs_json(*tok_, all, r.params.logprobs, 0, first_null);
    }
    json body = choice_base(std::move(choice));
    body["usage"] = usage();
    if (!job->session.empty()) body["session_id"] = job->session;
    res.set_content(dump(body), "application/json");
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through unbuffered
  streams_.fetch_add(1);
  const int top = r.params.logprobs;
  const bool include_usage = r.include_usage;
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, choice_base, usage, failure, echo_text, top, include_usage, offset = size_t{0},
       started = false](size_t, httplib::DataSink& sink) mutable {
        auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        auto gone = [&] {
          job->cancel();  // the client went away: the scheduler drops the job at its next step
          streams_.fetch_sub(1);
          return false;
        };
        if (!started && !echo_text.empty()) {
          if (!write(sse_event(choice_base({{"text", to_valid_utf8(echo_text)}, {"index", 0}, {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}))))
            return gone();
          offset = echo_text.size();
        }
        started = true;
        for (JobEvent e;;) {
          if (!job->next_event(e, Clock::now() + std::chrono::seconds(1))) {
            if (!write(": keep-alive\n\n")) return gone();  // also how a disconnect is noticed while waiting
            continue;
          }
          if (!e.end) {
            if (e.text.empty() && top < 0) continue;
            json lp = nullptr;
            if (top >= 0) lp = logprobs_json(*tok_, {e.token}, top, offset, false);
            offset += e.text.size();
            if (!write(sse_event(choice_base({{"text", e.text}, {"index", 0}, {"logprobs", lp}, {"finish_reason", nullptr}}))))
              return gone();
            continue;
          }
          bool ok = true;
          if (auto err = failure()) {
            ok = write(sse_event(err->body()));
          } else {
            json last = choice_base({{"text", to_valid_utf8(e.text)}, {"index", 0}, {"logprobs", nullptr},
                                     {"finish_reason", openai_finish_reason(job->finish_reason())}});
            if (!job->session.empty()) last["session_id"] = job->session;
            ok = write(sse_event(last));
            if (ok && include_usage) {
              json u = choice_base(json());
              u["choices"] = json::array();
              u["usage"] = usage();
              ok = write(sse_event(u));
            }
          }
          ok = ok && write("data: [DONE]\n\n");
          streams_.fetch_sub(1);
          if (ok) sink.done();
          return ok;
        }
      });
}

}  // namespace

int run_server(std::shared_ptr<const Model> model, const ServerOptions& options) {
  // SIGTERM/SIGINT are taken by one thread (sigwait); block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Server server(std::move(model), options);
  return server.run();
}

}  // namespace longvq::server
