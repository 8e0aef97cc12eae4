// Continuous batching over one causal LM: one loop owns a Session and a State of `slots` rows;
// each step it admits queued jobs into free rows, prefills the newcomers in chunks (a budget of
// tokens per step, so a long prompt never stalls everyone else's tokens), decodes every active
// row in one batched call, and retires finished jobs. A row's logits do not depend on the other
// rows (engine batch invariance), so a seeded job gives the same text alone or beside 63 others,
// and the same as `longvq generate`.
//
// Submitters (HTTP handler threads, the CLI, Python) make a Job, submit it, then wait for its
// events: each sampled token with the text that became safe to show, then the end. A job can be
// cancelled at any time (a client that disconnects): it is dropped at the next step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/longvq.h"
#include "engine/serving/generation.h"
#include "engine/serving/metrics.h"
#include "engine/serving/session_store.h"
#include "engine/text/tokenizer.h"

namespace longvq {

struct SchedulerOptions {
  int64_t slots = 16;            // sequences decoding at once (the State's rows, the decode batch)
  int64_t max_chunk = 256;       // prefill tokens per row per step
  int64_t prefill_budget = 512;  // prefill tokens per step over all rows
  int64_t max_queue = 256;       // waiting jobs before submit() refuses (QueueFull)
  int threads = 0;               // CPU threads; 0 = all cores
  SessionStore* sessions = nullptr;  // where session jobs' contexts live (none: no sessions)
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a job is told, in order: zero or more tokens, then one end.
struct JobEvent {
  bool end = false;
  TokenInfo token;   // the sampled token (not at the end)
  std::string text;  // text that became safe to show
};

class Job {
 public:
  // --- set before submit() ---
  std::vector<int32_t> prompt;    // new tokens of the context (may be empty when continuing)
  GenerationParams params;
  std::string session;            // continue and update this session (reserved by the submitter)
  bool add_bos = true;            // a new (empty) context starts with <bos> when the model has it
  bool prompt_logprobs = false;   // logprobs of the prompt tokens (echo with logprobs)
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();

  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Waits for the next event (true), or until `until` (false: nothing yet).
  bool next_event(JobEvent& out, std::chrono::steady_clock::time_point until = std::chrono::steady_clock::time_point::max());
  void wait();  // until the job ended

  // --- results, valid once it ended ---
  FinishReason finish_reason() const { return reason_; }
  const std::string& error() const { return error_; }  // when finish_reason() is error
  bool store_unavailable() const { return store_unavailable_; }  // the error: the session store was down
  const std::string& text() const { return text_; }
  const std::vector<TokenInfo>& tokens() const { return tokens_; }          // sampled
  const std::vector<TokenInfo>& prompt_tokens_info() const { return prompt_info_; }  // with prompt_logprobs
  int64_t prompt_tokens() const { return prompt_count_; }   // tokens the model consumed for the prompt
  int64_t completion_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  double time_to_first_token() const { return ttft_; }     // seconds from submit

 private:
  friend class Scheduler;
  void push(JobEvent e);

  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobEvent> events_;
  bool ended_ = false;
  FinishReason reason_ = FinishReason::none;
  std::string error_, text_;
  std::vector<TokenInfo> tokens_, prompt_info_;
  int64_t prompt_count_ = 0;
  double ttft_ = 0;
  bool store_unavailable_ = false;
  std::chrono::steady_clock::time_point submitted_;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, const Tokenizer& tok, SchedulerOptions options);
  ~Scheduler();  // stops the loop; pending jobs end as cancelled

  // Queues a job (throws QueueFull when max_queue jobs wait, std::runtime_error once draining).
  void submit(const std::shared_ptr<Job>& job);
  // Stops admitting; waits up to `grace` for the running and queued jobs to finish, then cancels
  // the rest; returns when the loop has stopped.
  void drain(std::chrono::milliseconds grace);

  struct Stats {
    int64_t slots = 0, busy = 0, queued = 0;
    int64_t prompt_tokens = 0, completion_tokens = 0;  // since start
    int64_t steps = 0;
  };
  Stats stats() const;
  const Histogram& ttft() const { return ttft_; }
  const Histogram& inter_token() const { return itl_; }
  Session& session() { return session_; }  // the loop's own; use only while it is stopped
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Slot;
  void loop();
  void admit();
  void expire();
  void prefill_step();
  void decode_step();
  void retire(Slot& s, FinishReason reason, const std::string& error = "");
  void emit(Slot& s, const Generation::Step& step);
  void fail_rows(const std::vector<size_t>& slots, const std::exception& e);

  std::shared_ptr<const Model> model_;
  const Tokenizer& tok_;
  SchedulerOptions options_;
  Session session_;
  State state_;
  std::optional<int32_t> bos_, eos_;
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool draining_ = false, stop_ = false;
  std::atomic<int64_t> busy_{0}, prompt_tokens_{0}, completion_tokens_{0}, steps_{0};
  Histogram ttft_, itl_;
  std::thread thread_;
};

}  // namespace longvq
