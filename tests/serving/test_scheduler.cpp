// The serving library: continuous batching gives every job exactly its solo output, sessions
// continue exactly, cancellation and limits behave, stop strings and UTF-8 are streamed right,
// session stores spill, survive a restart and refuse concurrent use.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/longvq.h"
#include "engine/serving/scheduler.h"
#include "engine/serving/text_stream.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

const fs::path kModel = fs::path(LONGVQ_FIXTURES_DIR) / "lm_bytes_layernorm_tied";

struct Fixture {
  std::shared_ptr<const Model> model = Model::load(kModel);
  Tokenizer tok{model->config().tokenizer};
};

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / (name + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// One sequence alone, the way `longvq generate` runs it: a 1-row state, the prompt in one
// prefill, then decode. Returns the text and the sampled ids.
std::pair<std::string, std::vector<int32_t>> alone(const Fixture& f, const std::vector<int32_t>& prompt,
                                                  const GenerationParams& params) {
  Session session(f.model, {.max_batch = 1, .max_chunk = 64, .threads = 1});
  State state = session.new_state(1);
  std::vector<int32_t> feed;
  if (auto bos = bos_token(f.tok)) feed.push_back(*bos);
  feed.insert(feed.end(), prompt.begin(), prompt.end());
  Generation gen(f.tok, params, eos_token(f.tok));
  gen.accept_context(feed);
  std::vector<float> logits;
  {
    const std::vector<RowTokens> rows = {{0, feed}};
    auto last = session.prefill(state, rows);
    logits.assign(last.begin(), last.end());
  }
  std::vector<int32_t> ids;
  while (!gen.finished()) {
    const Generation::Step s = gen.step(logits);
    ids.push_back(s.token.id);
    if (s.finished) break;
    auto d = session.decode(state, std::span<const int32_t>(&s.token.id, 1));
    logits.assign(d.begin(), d.end());
  }
  return {gen.text(), ids};
}

std::vector<int32_t> random_prompt(std::mt19937& rng, size_t n) {
  std::vector<int32_t> p;
  for (size_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>(32 + rng() % 90));  // printable bytes
  return p;
}

}  // namespace

TEST_CASE("scheduler: 24 jobs batched continuously == each alone, bit for bit", "[serving]") {
  Fixture f;
  std::mt19937 rng(3);
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::pair<std::string, std::vector<int32_t>>> expected;
  for (int i = 0; i < 24; ++i) {
    auto job = std::make_shared<Job>();
    job->prompt = random_prompt(rng, 1 + rng() % 60);
    job->params.max_tokens = 1 + static_cast<int64_t>(rng() % 30);
    job->params.sampling.temperature = i % 4 == 0 ? 0.0 : 0.9;
    job->params.sampling.seed = 1000 + static_cast<uint64_t>(i);
    job->params.sampling.repeat_penalty = i % 3 == 0 ? 1.3 : 1.0;
    if (i % 5 == 0) job->params.stop = {"e", "th"};
    expected.push_back(alone(f, job->prompt, job->params));
    jobs.push_back(job);
  }
  // 5 rows, short prefill chunks and a small budget: jobs join and leave all the time.
  Scheduler sched(f.model, f.tok, {.slots = 5, .max_chunk = 7, .prefill_budget = 16, .max_queue = 64, .threads = 1});
  for (auto& j : jobs) sched.submit(j);
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i]->wait();
    INFO("job " << i);
    CHECK(jobs[i]->error().empty());
    CHECK(jobs[i]->text() == expected[i].first);
    std::vector<int32_t> ids;
    for (const TokenInfo& t : jobs[i]->tokens()) ids.push_back(t.id);
    CHECK(ids == expected[i].second);
    CHECK((jobs[i]->finish_reason() == FinishReason::stop || jobs[i]->finish_reason() == FinishReason::length));
  }
  const Scheduler::Stats st = sched.stats();
  CHECK(st.busy == 0);
  CHECK(st.completion_tokens > 24);
}

TEST_CASE("scheduler: streamed events add up to the text; max_tokens 0; prompt logprobs", "[serving]") {
  Fixture f;
  Scheduler sched(f.model, f.tok, {.slots = 2, .max_chunk = 4, .threads = 1});
  auto job = std::make_shared<Job>();
  job->prompt = f.tok.encode("Hello there");
  job->params.max_tokens = 12;
  job->params.sampling.temperature = 0;
  job->params.logprobs = 3;
  job->prompt_logprobs = true;
  sched.submit(job);
  std::string streamed;
  int tokens = 0;
  for (JobEvent e; job->next_event(e);) {
    streamed += e.text;
    if (e.end) break;
    ++tokens;
    CHECK(e.token.top.size() == 3);
    CHECK(e.token.logprob <= 0);
    CHECK(e.token.top[0].second >= e.token.logprob);
  }
  CHECK(streamed == job->text());
  CHECK(tokens == job->completion_tokens());
  CHECK(job->prompt_tokens_info().size() == job->prompt.size());  // the model starts with <bos>
  auto zero = std::make_shared<Job>();
  zero->prompt = f.tok.encode("abc");
  zero->params.max_tokens = 0;
  sched.submit(zero);
  zero->wait();
  CHECK(zero->finish_reason() == FinishReason::length);
  CHECK(zero->completion_tokens() == 0);
  CHECK(zero->prompt_tokens() == 3);  // <bos> a b consumed, c pending
}

TEST_CASE("scheduler: a session continued == one long greedy request", "[serving]") {
  Fixture f;
  TempDir tmp("longvq_sched_sessions_");
  Session store_session(f.model, {.threads = 1});
  LocalSessionStore store(*f.model, store_session.backend(), 1 << 20, tmp.path);
  Scheduler sched(f.model, f.tok, {.slots = 3, .max_chunk = 5, .threads = 1, .sessions = &store});
  REQUIRE(store.create("chat") == SessionStore::Status::ok);
  GenerationParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 9;
  auto turn = [&](const std::string& text) {
    REQUIRE(store.reserve("chat") == SessionStore::Status::ok);
    auto job = std::make_shared<Job>();
    job->prompt = f.tok.encode(text);
    job->params = greedy;
    job->session = "chat";
    sched.submit(job);
    job->wait();
    REQUIRE(job->error().empty());
    return job->text();
  };
  const std::string a = turn("Once upon"), b = turn(" a time"), c = turn("");
  // One request with the whole context: the first prompt, its answer, the second prompt...
  GenerationParams longer = greedy;
  longer.max_tokens = 9;
  const auto whole = alone(f, f.tok.encode("Once upon" + a + " a time"), longer);
  CHECK(whole.first == b);
  const auto whole2 = alone(f, f.tok.encode("Once upon" + a + " a time" + b), longer);
  CHECK(whole2.first == c);
  // A busy session is refused; a missing one is missing.
  REQUIRE(store.reserve("chat") == SessionStore::Status::ok);
  CHECK(store.reserve("chat") == SessionStore::Status::busy);
  CHECK(store.remove("chat") == SessionStore::Status::busy);
  store.release("chat");
  CHECK(store.reserve("nope") == SessionStore::Status::missing);
}

TEST_CASE("scheduler: cancel, timeout, queue limit, drain", "[serving]") {
  Fixture f;
  Scheduler sched(f.model, f.tok, {.slots = 1, .max_chunk = 8, .max_queue = 2, .threads = 1});
  auto slow = std::make_shared<Job>();
  slow->prompt = f.tok.encode("x");
  slow->params.max_tokens = 1 << 20;
  slow->params.stop_at_eos = false;
  sched.submit(slow);
  JobEvent e;
  REQUIRE(slow->next_event(e));  // it runs: the one slot is busy from now on
  auto late = std::make_shared<Job>();
  late->prompt = f.tok.encode("y");
  late->params.max_tokens = 1 << 20;
  late->params.stop_at_eos = false;
  late->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  sched.submit(late);
  auto third = std::make_shared<Job>();
  third->prompt = f.tok.encode("z");
  sched.submit(third);
  CHECK_THROWS_AS(sched.submit(std::make_shared<Job>()), QueueFull);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // `late` expires while it waits
  slow->cancel();
  slow->wait();
  CHECK(slow->finish_reason() == FinishReason::cancelled);
  late->wait();
  CHECK(late->finish_reason() == FinishReason::timeout);
  third->wait();
  CHECK(third->error().empty());
  sched.drain(std::chrono::milliseconds(100));
  CHECK_THROWS_WITH(sched.submit(std::make_shared<Job>()), Catch::Contains("shutting down"));
}

TEST_CASE("text stream: stop strings across pieces, UTF-8 held back", "[serving]") {
  TextStream s({"STOP", "xy"}, true);
  CHECK(s.push("abc S") == "abc ");  // "S" could start STOP
  CHECK(s.push("T") == "");
  CHECK(s.push("x") == "ST");  // "STx" can no longer be STOP, but "x" could start "xy"
  CHECK(s.push("yz") == "");
  CHECK(s.stopped());
  TextStream u({}, true);
  CHECK(u.push("a\xC3") == "a");  // half of é
  CHECK(u.push("\xA9!") == "\xC3\xA9!");
  CHECK(u.push("\xE2\x82") == "");
  CHECK(u.flush() == "\xE2\x82");
  CHECK(to_valid_utf8("ok\xE2\x82") == "ok\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(to_valid_utf8("\xC3\xA9") == "\xC3\xA9");
  TextStream raw({}, false);
  CHECK(raw.push("a\xC3") == "a\xC3");
}

TEST_CASE("session store: memory budget spills to disk, sessions survive a restart, delete", "[serving]") {
  Fixture f;
  TempDir tmp("longvq_store_");
  Session session(f.model, {.threads = 1});
  State two = session.new_state(1);
  session.prefill(two, std::vector<int32_t>{1, 2, 3});
  const size_t row = two.bytes_per_sequence();
  {
    LocalSessionStore store(*f.model, session.backend(), 2 * row + 100, tmp.path);  // room for two
    for (const char* id : {"a", "b", "c", "d"}) {
      REQUIRE(store.create(id) == SessionStore::Status::ok);
      REQUIRE(store.reserve(id) == SessionStore::Status::ok);
      SavedContext ctx = store.take(id);
      CHECK(ctx.empty());
      ctx.state.emplace(two.copy_row(0));
      ctx.pending = 7;
      ctx.recent = {1, 2, 3};
      store.commit(id, std::move(ctx));
    }
    const auto st = store.stats();
    CHECK(st.in_memory == 2);
    CHECK(st.on_disk == 2);
    CHECK(fs::exists(tmp.path / "a.state"));  // the least recently used went first
    CHECK(store.create("a") == SessionStore::Status::exists);
    CHECK(store.remove("b") == SessionStore::Status::ok);
    CHECK(!fs::exists(tmp.path / "b.state"));
    store.persist_all();
  }
  LocalSessionStore again(*f.model, session.backend(), 1 << 20, tmp.path);
  CHECK(again.stats().on_disk == 3);  // a, c, d
  REQUIRE(again.reserve("c") == SessionStore::Status::ok);
  SavedContext c = again.take("c");
  REQUIRE(c.state);
  CHECK(c.state->positions()[0] == 3);
  CHECK(c.pending == 7);
  CHECK(c.recent == std::vector<int32_t>{1, 2, 3});
  again.commit("c", std::move(c));
  CHECK(!valid_session_id("../x"));
  CHECK(!valid_session_id(""));
  CHECK(valid_session_id("user-42_chat.1"));
}
