// `longvq classify` streams: memory bounded by the window, not the input; every input field is
// echoed; -o goes through FILE.partial, and a job killed with SIGKILL at any point and resumed
// (--resume) writes every row exactly once, the same bytes as an uninterrupted run.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <spawn.h>

#include <chrono>
#include <random>
#include <thread>

#include "tests/cli/cli_run.h"

using namespace cli_test;
using Catch::Contains;

extern char** environ;

namespace {

const std::string kCls = kFix + "/cls_batchnorm_tokens";

// N JSONL inputs for the tokens fixture (40 ids, 5 classes), each with an id, a label and a
// field of the user's; lengths 1..max_len.
std::string make_inputs(int n, int max_len, uint32_t seed = 1, const std::string& id = "r") {
  std::mt19937 rng(seed);
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += "{\"id\": \"" + id + std::to_string(i) + "\", \"tokens\": [";
    const int len = 1 + static_cast<int>(rng() % static_cast<uint32_t>(max_len));
    for (int k = 0; k < len; ++k) {
      if (k) s += ',';
      s += std::to_string(rng() % 40);
    }
    s += "], \"source\": {\"file\": \"f" + std::to_string(i % 7) + "\"}, \"label\": " + std::to_string(rng() % 5) + "}\n";
  }
  return s;
}

// Starts the binary with `args` (no shell, stderr to /dev/null) and returns its pid.
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> all = {kBin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int error = posix_spawn(&pid, kBin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(error == 0);
  return pid;
}

// Runs the binary with `args` and returns its exit code and peak RSS in KiB.
std::pair<int, long> run_rss(const std::vector<std::string>& args) {
  const pid_t pid = spawn(args);
  int status = 0;
  rusage ru{};
  REQUIRE(wait4(pid, &status, 0, &ru) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), ru.ru_maxrss};
}

}  // namespace

TEST_CASE("classify stream: every field of a JSONL line is echoed in its prediction, in input order", "[cli][classify]") {
  TempDir t;
  std::ofstream(t / "in.jsonl") << "{\"tokens\": [1, 2], \"id\": 7, \"split\": \"dev\", \"meta\": {\"a\": [1, 2]}, \"label\": 3}\n"
                                << "\n{\"note\": null, \"text\": \"t5 t6\", \"label\": 0}\n";
  Result r = run("classify -m " + q(kCls) + " " + q(t / "in.jsonl"));
  REQUIRE(r.code == 0);
  const auto lines = jsonl(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(r.out.rfind("{\"index\":0,\"id\":7,\"split\":\"dev\",\"meta\":{\"a\":[1,2]},\"label\":", 0) == 0);
  CHECK(lines[0]["target"] == 3);
  CHECK(lines[1]["index"] == 1);
  CHECK(lines[1].contains("note"));
  CHECK(lines[1]["note"].is_null());
  CHECK_FALSE(lines[1].contains("id"));
  // A key classify writes itself, or one a typo away from an input key, is refused, naming the line.
  std::ofstream(t / "bad.jsonl") << "{\"tokens\": [1]}\n{\"tokens\": [1], \"probs\": 2}\n";
  r = run("classify -m " + q(kCls) + " " + q(t / "bad.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("bad.jsonl:2: the key \"probs\" is one classify writes"));
  std::ofstream(t / "typo.jsonl") << "{\"tokens\": [1], \"lable\": 2}\n";
  r = run("classify -m " + q(kCls) + " " + q(t / "typo.jsonl"));
  CHECK_THAT(r.err, Contains("typo.jsonl:1: unknown key \"lable\" (did you mean \"label\"?)"));
}

TEST_CASE("classify stream: windows of any size give the bytes of one whole batch", "[cli][classify]") {
  TempDir t;
  std::ofstream(t / "in.jsonl") << make_inputs(700, 90);
  const std::string cmd = "classify -m " + q(kCls) + " " + q(t / "in.jsonl") + " --logits -t 1 ";
  const Result one = run(cmd + "-b 1");
  REQUIRE(one.code == 0);
  CHECK(jsonl(one.out).size() == 700);
  for (const char* b : {"-b 3", "-b 16", "-b 700"}) {
    INFO(b);
    CHECK(run(cmd + b).out == one.out);
  }
  // stdin streams too.
  CHECK(run("classify -m " + q(kCls) + " --logits -t 1 -b 16", t / "in.jsonl").out == one.out);
}

TEST_CASE("classify --resume: killed with SIGKILL at random points and resumed == one uninterrupted run",
          "[cli][classify][resume]") {
  TempDir t;
  std::ofstream(t / "in.jsonl") << make_inputs(3000, 120);
  const std::vector<std::string> base = {"classify", "-m", kCls, t / "in.jsonl", "-t", "1", "-b", "8", "-o"};
  std::vector<std::string> whole = base;
  whole.push_back(t / "whole.jsonl");
  REQUIRE(run_rss(whole).first == 0);
  const std::string want = slurp(t.path / "whole.jsonl");
  REQUIRE(jsonl(want).size() == 3000);
  const fs::path partial = t.path / "r.jsonl.partial";
  std::mt19937 rng(11);
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    int kills = 0;
    for (int attempt = 0; attempt < 50; ++attempt) {
      // Killed once its output has passed a random point (by bytes, not by time: the same on a
      // loaded machine or under a sanitizer), a random few milliseconds later: maybe mid-write.
      std::error_code ec;
      const double done = fs::exists(partial, ec) ? static_cast<double>(fs::file_size(partial, ec)) : 0.0;
      const double target = done + std::uniform_real_distribution<double>(0.0, 0.9)(rng) * (static_cast<double>(want.size()) - done);
      std::vector<std::string> args = base;
      args.push_back(t / "r.jsonl");
      args.push_back("--resume");
      const pid_t pid = spawn(args);
      int status = 0;
      bool killed = false;
      for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        const auto size = fs::file_size(partial, ec);
        if (!ec && static_cast<double>(size) > target && !killed) {
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
          ::kill(pid, SIGKILL);
          killed = true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (WIFEXITED(status)) {
        REQUIRE(WEXITSTATUS(status) == 0);
        break;
      }
      REQUIRE(WTERMSIG(status) == SIGKILL);
      ++kills;
    }
    CHECK(kills > 0);
    CHECK(slurp(t.path / "r.jsonl") == want);
    CHECK_FALSE(fs::exists(partial));
    fs::remove(t.path / "r.jsonl");
  }
}

TEST_CASE("classify --resume: what it refuses, and a partial cut mid-line", "[cli][classify][resume]") {
  TempDir t;
  std::ofstream(t / "in.jsonl") << make_inputs(300, 20);
  std::ofstream(t / "other.jsonl") << make_inputs(300, 20, 2, "q");
  const std::string cls = "classify -m " + q(kCls) + " -t 1 ";
  REQUIRE(run(cls + q(t / "in.jsonl") + " -o " + q(t / "whole.jsonl")).code == 0);
  const std::string want = slurp(t.path / "whole.jsonl");
  // A partial torn in the middle of line 101: the torn line is cut and recomputed.
  const size_t cut = [&] {
    size_t at = 0;
    for (int i = 0; i < 100; ++i) at = want.find('\n', at) + 1;
    return at + 17;
  }();
  std::ofstream(t / "p.jsonl.partial") << want.substr(0, cut);
  // Without --resume the partial is the only copy of that work: refused, kept.
  Result r = run(cls + q(t / "in.jsonl") + " -o " + q(t / "p.jsonl"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("p.jsonl.partial holds the predictions of an interrupted run: add --resume"));
  CHECK(slurp(t.path / "p.jsonl.partial") == want.substr(0, cut));
  // Another input (its ids differ) is refused.
  r = run(cls + q(t / "other.jsonl") + " -o " + q(t / "p.jsonl") + " --resume");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("is this the input that run classified?"));
  r = run(cls + q(t / "in.jsonl") + " -o " + q(t / "p.jsonl") + " --resume");
  CHECK(r.code == 0);
  CHECK_THAT(r.err, Contains("resuming: 100 predictions already in"));
  CHECK_THAT(r.err, Contains("classified 200 sequences"));
  CHECK(slurp(t.path / "p.jsonl") == want);
  // A finished output resumed: nothing left to do, the file stays the same.
  r = run(cls + q(t / "in.jsonl") + " -o " + q(t / "p.jsonl") + " --resume");
  CHECK(r.code == 0);
  CHECK(slurp(t.path / "p.jsonl") == want);
  // A file that is not classify's output, --resume without -o.
  std::ofstream(t / "junk.jsonl.partial") << "{\"index\":0,\"label\":1}\nhello\n";
  r = run(cls + q(t / "in.jsonl") + " -o " + q(t / "junk.jsonl") + " --resume");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("junk.jsonl.partial:2 is not prediction #1"));
  CHECK(run(cls + q(t / "in.jsonl") + " --resume").code == 2);
}

TEST_CASE("classify -o: a second job on the same output is refused while the first runs", "[cli][classify]") {
  TempDir t;
  std::ofstream(t / "in.jsonl") << make_inputs(400, 20);
  const std::string cls = "\"$LONGVQ\" classify -m " + q(kCls) + " -t 1 -o " + q(t / "o.jsonl");
  // The first job holds the output from its start; its input arrives a second later.
  Result r = shell("(sleep 1; cat " + q(t / "in.jsonl") + ") | " + cls + " 2>/dev/null & sleep 0.3; " + cls + " " +
                   q(t / "in.jsonl") + "; echo \"second=$?\"; wait; echo \"first=$?\"");
  CHECK_THAT(r.out, Contains("second=1") && Contains("first=0"));
  CHECK_THAT(r.err, Contains("another longvq classify is writing") && Contains("o.jsonl.partial is locked"));
  CHECK(jsonl(slurp(t.path / "o.jsonl")).size() == 400);
}

#if defined(__SANITIZE_ADDRESS__)
#define LONGVQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LONGVQ_TEST_ASAN 1
#endif
#endif

TEST_CASE("classify stream: peak memory does not grow with the input", "[cli][classify][memory]") {
#ifdef LONGVQ_TEST_ASAN
  WARN("skipped: AddressSanitizer holds freed memory in quarantine, so peak RSS grows by design");
  return;
#endif
  TempDir t;
  std::ofstream(t / "small.jsonl") << make_inputs(5000, 8);
  std::ofstream(t / "large.jsonl") << make_inputs(150000, 8);
  const auto [small_code, small_kib] = run_rss({"classify", "-m", kCls, t / "small.jsonl", "-t", "1", "-o", t / "s.jsonl"});
  const auto [large_code, large_kib] = run_rss({"classify", "-m", kCls, t / "large.jsonl", "-t", "1", "-o", t / "l.jsonl"});
  REQUIRE(small_code == 0);
  REQUIRE(large_code == 0);
  INFO("peak RSS: " << small_kib << " KiB for 5,000 inputs, " << large_kib << " KiB for 150,000");
  // Held whole, 150,000 inputs and their predictions are tens of MiB more.
  CHECK(large_kib < small_kib + 6 * 1024);
}
