#include "engine/serving/scheduler.h"

#include <algorithm>

namespace longvq {

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

// --- Job ------------------------------------------------------------------------------------

void Job::push(JobEvent e) {
  {
    std::lock_guard lock(mu_);
    if (e.end) ended_ = true;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool Job::next_event(JobEvent& out, Clock::time_point until) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, until, [&] { return !events_.empty(); })) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Job::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return ended_; });
}

// --- Scheduler ------------------------------------------------------------------------------

// One row of the State and the job running in it.
struct Scheduler::Slot {
  int32_t row = 0;
  std::shared_ptr<Job> job;    // null: free
  std::vector<int32_t> feed;   // tokens the state consumes before the first sample
  size_t fed = 0;              // of them, consumed
  size_t feed_end = 0;         // feed.size(), or one less when nothing is sampled (max_tokens 0)
  std::optional<Generation> gen;
  std::optional<SavedContext> taken;  // the session's context as it was (given back if the job fails)
  Clock::time_point last_token;
  bool decoding() const { return job && fed == feed_end && gen && !gen->finished(); }
  bool prefilling() const { return job && fed < feed_end; }
};

Scheduler::Scheduler(std::shared_ptr<const Model> model, const Tokenizer& tok, SchedulerOptions options)
    : model_(std::move(model)), tok_(tok), options_(options),
      session_(model_, SessionOptions{.max_batch = std::max<int64_t>(1, options.slots),
                                      .max_chunk = std::max<int64_t>(1, options.max_chunk),
                                      .threads = options.threads}),
      state_(session_.new_state(std::max<int64_t>(1, options.slots))), bos_(bos_token(tok)), eos_(eos_token(tok)),
      ttft_(latency_buckets()), itl_(latency_buckets()) {
  if (options_.slots < 1 || options_.max_chunk < 1 || options_.prefill_budget < 1)
    throw std::invalid_argument("scheduler sizes (slots, max_chunk, prefill_budget) must be >= 1");
  for (int64_t r = 0; r < options_.slots; ++r) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->row = static_cast<int32_t>(r);
  }
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    draining_ = stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mu_);
    if (draining_) throw std::runtime_error("the server is shutting down; retry on another replica");
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queue)
      throw QueueFull(std::to_string(queue_.size()) + " requests are waiting already (the queue holds " +
                      std::to_string(options_.max_queue) + "); retry later");
    job->submitted_ = Clock::now();
    queue_.push_back(job);
  }
  cv_.notify_all();
}

void Scheduler::drain(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  const auto until = Clock::now() + grace;
  while (Clock::now() < until) {
    {
      std::lock_guard lock(mu_);
      if (queue_.empty() && busy_.load() == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;  // the loop cancels what is left
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Scheduler::Stats Scheduler::stats() const {
  Stats s;
  s.slots = options_.slots;
  s.busy = busy_.load();
  {
    std::lock_guard lock(mu_);
    s.queued = static_cast<int64_t>(queue_.size());
  }
  s.prompt_tokens = prompt_tokens_.load();
  s.completion_tokens = completion_tokens_.load();
  s.steps = steps_.load();
  return s;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || busy_.load() > 0 || !queue_.empty(); });
      if (stop_) break;
    }
    admit();
    expire();
    prefill_step();
    decode_step();
    steps_.fetch_add(1);
  }
  // Stopped: whatever is left ends as cancelled (its session keeps its earlier context).
  for (auto& s : slots_)
    if (s->job) retire(*s, FinishReason::cancelled);
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  for (auto& job : left) {
    if (!job->session.empty() && options_.sessions) options_.sessions->release(job->session);
    job->reason_ = FinishReason::cancelled;
    job->push(JobEvent{.end = true, .token = {}, .text = {}});
  }
}

void Scheduler::admit() {
  for (auto& s : slots_) {
    if (s->job) continue;
    std::shared_ptr<Job> job;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    s->job = job;
    busy_.fetch_add(1);
    if (job->cancelled() || Clock::now() > job->deadline) {  // it ended while it waited
      retire(*s, job->cancelled() ? FinishReason::cancelled : FinishReason::timeout);
      continue;
    }
    try {
      if (!job->session.empty()) {
        if (!options_.sessions) throw std::runtime_error("this scheduler keeps no sessions");
        s->taken.emplace(options_.sessions->take(job->session));
      }
      const SavedContext empty;
      const SavedContext& ctx = s->taken ? *s->taken : empty;
      if (ctx.state) state_.set_row(s->row, *ctx.state, 0);
      else state_.reset(s->row);
      s->feed.clear();
      if (ctx.pending) s->feed.push_back(*ctx.pending);
      else if (ctx.empty() && job->add_bos && bos_) s->feed.push_back(*bos_);
      s->feed.insert(s->feed.end(), job->prompt.begin(), job->prompt.end());
      if (s->feed.empty())
        throw std::invalid_argument("nothing to start from: the prompt is empty and the model has no <bos> token");
      s->fed = 0;
      s->gen.emplace(tok_, job->params, eos_);
      s->gen->accept_context(ctx.recent);
      s->gen->accept_context(std::span<const int32_t>(s->feed).subspan(ctx.pending ? 1 : 0));
      // Nothing to sample: consume all but the last token, which stays pending for later.
      s->feed_end = s->gen->finished() ? s->feed.size() - 1 : s->feed.size();
      job->prompt_count_ = static_cast<int64_t>(s->feed_end);
      if (s->feed_end == 0) retire(*s, FinishReason::length);
    } catch (const std::exception& e) {
      job->store_unavailable_ = dynamic_cast<const StoreUnavailable*>(&e) != nullptr;
      retire(*s, FinishReason::error, e.what());
    }
  }
}

void Scheduler::expire() {
  const auto now = Clock::now();
  for (auto& s : slots_) {
    if (!s->job) continue;
    if (s->job->cancelled()) retire(*s, FinishReason::cancelled);
    else if (now > s->job->deadline) retire(*s, FinishReason::timeout);
  }
}

void Scheduler::emit(Slot& s, const Generation::Step& step) {
  Job& job = *s.job;
  const auto now = Clock::now();
  if (job.tokens_.empty()) {
    job.ttft_ = seconds(now - job.submitted_);
    ttft_.observe(job.ttft_);
  } else {
    itl_.observe(seconds(now - s.last_token));
  }
  s.last_token = now;
  job.tokens_.push_back(step.token);
  job.text_ += step.text;
  completion_tokens_.fetch_add(1);
  job.push(JobEvent{.end = false, .token = step.token, .text = step.text});
}

void Scheduler::prefill_step() {
  std::vector<size_t> chosen;
  std::vector<RowTokens> rows;
  int64_t budget = options_.prefill_budget;
  for (size_t i = 0; i < slots_.size() && budget > 0; ++i) {  // oldest rows first
    Slot& s = *slots_[i];
    if (!s.prefilling()) continue;
    const int64_t n = std::min({static_cast<int64_t>(s.feed_end - s.fed), options_.max_chunk, budget});
    rows.push_back({s.row, std::span<const int32_t>(s.feed.data() + s.fed, static_cast<size_t>(n))});
    chosen.push_back(i);
    budget -= n;
  }
  if (rows.empty()) return;
  const int64_t V = model_->config().vocab_size;
  try {
    LogitsSink sink;
    bool any_logprobs = false;
    for (size_t i : chosen) any_logprobs = any_logprobs || slots_[i]->job->prompt_logprobs;
    if (any_logprobs)  // the logprob of each prompt token given those before it
      sink = [&](size_t k, int64_t offset, std::span<const float> logits) {
        Slot& s = *slots_[chosen[k]];
        if (!s.job->prompt_logprobs) return;
        const int top = std::max(0, s.job->params.logprobs);
        const int64_t n = static_cast<int64_t>(logits.size()) / V;
        for (int64_t t = 0; t < n; ++t) {
          const size_t next = s.fed + static_cast<size_t>(offset + t) + 1;  // the token these logits predict
          if (next >= s.feed.size()) break;
          s.job->prompt_info_.push_back(token_info(tok_, logits.subspan(static_cast<size_t>(t * V), static_cast<size_t>(V)),
                                                   s.feed[next], top));
        }
      };
    std::span<const float> last = session_.prefill(state_, rows, sink);
    for (size_t k = 0; k < chosen.size(); ++k) {
      Slot& s = *slots_[chosen[k]];
      s.fed += rows[k].tokens.size();
      prompt_tokens_.fetch_add(static_cast<int64_t>(rows[k].tokens.size()));
      if (s.fed < s.feed_end) continue;
      if (s.gen->finished()) {  // max_tokens 0: the prompt is consumed, its last token pending
        retire(s, FinishReason::length);
        continue;
      }
      const Generation::Step step = s.gen->step(last.subspan(k * static_cast<size_t>(V), static_cast<size_t>(V)));
      emit(s, step);
      if (step.finished) retire(s, s.gen->reason());
    }
  } catch (const std::exception& e) {
    fail_rows(chosen, e);
  }
}

void Scheduler::decode_step() {
  std::vector<size_t> chosen;
  std::vector<int32_t> rows, tokens;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    if (!s.decoding()) continue;
    chosen.push_back(i);
    rows.push_back(s.row);
    tokens.push_back(*s.gen->pending());
  }
  if (rows.empty()) return;
  const size_t V = static_cast<size_t>(model_->config().vocab_size);
  try {
    std::span<const float> logits = session_.decode(state_, rows, tokens);
    for (size_t k = 0; k < chosen.size(); ++k) {
      Slot& s = *slots_[chosen[k]];
      const Generation::Step step = s.gen->step(logits.subspan(k * V, V));
      emit(s, step);
      if (step.finished) retire(s, s.gen->reason());
    }
  } catch (const std::exception& e) {
    fail_rows(chosen, e);
  }
}

void Scheduler::fail_rows(const std::vector<size_t>& chosen, const std::exception& e) {
  for (size_t i : chosen)
    if (slots_[i]->job) retire(*slots_[i], FinishReason::error, e.what());
}

void Scheduler::retire(Slot& s, FinishReason reason, const std::string& error) {
  std::shared_ptr<Job> job = std::move(s.job);
  s.job.reset();
  busy_.fetch_sub(1);
  std::string rest;
  if (s.gen) rest = s.gen->finish(reason);  // no-op when it finished by itself
  job->text_ += rest;
  job->reason_ = s.gen && s.gen->finished() && reason != FinishReason::error ? s.gen->reason() : reason;
  job->error_ = error;
  const bool completed = job->reason_ == FinishReason::stop || job->reason_ == FinishReason::length;
  if (!job->session.empty() && options_.sessions) {
    try {
      if (completed) {  // the context now: this row, and the token it has not consumed
        SavedContext ctx;
        ctx.state.emplace(state_.copy_row(s.row));
        ctx.pending = s.gen->pending() ? *s.gen->pending() : s.feed.back();
        ctx.recent = s.gen->recent();
        options_.sessions->commit(job->session, std::move(ctx));
      } else if (s.taken) {  // cancelled or failed: the session keeps its earlier context
        options_.sessions->commit(job->session, std::move(*s.taken));
      } else {
        options_.sessions->release(job->session);
      }
    } catch (const std::exception& e) {
      options_.sessions->release(job->session);
      job->reason_ = FinishReason::error;
      job->error_ = std::string("the session could not be saved: ") + e.what();
      job->store_unavailable_ = dynamic_cast<const StoreUnavailable*>(&e) != nullptr;
    }
  }
  s.taken.reset();
  s.gen.reset();
  job->push(JobEvent{.end = true, .token = {}, .text = rest});
}

}  // namespace longvq
