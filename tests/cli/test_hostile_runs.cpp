// Hostile inputs, the input side (docs/hostile-inputs.md): flags with absurd or non-finite
// values, model paths that are not directories, FIFOs and devices and endless streams where a
// file is expected, a closed stdin, poisoned or damaged state files, a model whose finite
// weights overflow at run time, and a config that implies far more than its file holds. Each
// must end with a clear message (exit 1 or 2) at once: never a hang, a crash or a wrong answer.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "loaders/safetensors.h"
#include "loaders/safetensors_writer.h"
#include "tests/cli/cli_run.h"
#include "tests/cli/state_edit.h"

namespace fs = std::filesystem;
using Catch::Contains;

using namespace cli_test;

namespace {

const std::string kCls = kFix + "/cls_batchnorm_tokens";
const std::string kM = " -m " + q(kLM);
// A bounded wait, so that a regression that blocks fails the test instead of hanging it (run()
// puts it before the binary).
const std::string kTimeout = "timeout 20";

// A copy of fixture `name` in `dir` with every element of weight `tensor` set to `value`.
void copy_with_weight(const std::string& name, const fs::path& dir, const std::string& tensor, float value) {
  fs::copy(kFix + "/" + name, dir);
  std::vector<std::vector<char>> bytes;
  std::vector<longvq::TensorToWrite> tensors;
  std::map<std::string, std::string> meta;
  {
    longvq::SafetensorsFile f(dir / "model.safetensors", longvq::LoadMode::read);
    for (const auto& [k, v] : f.metadata()) meta[k] = v;
    for (const auto& [n, info] : f.tensors()) {
      bytes.emplace_back(reinterpret_cast<const char*>(info.data), reinterpret_cast<const char*>(info.data) + info.nbytes);
      if (n == tensor)
        for (size_t i = 0; i < info.nbytes / 4; ++i) std::memcpy(bytes.back().data() + 4 * i, &value, 4);
      tensors.push_back({n, "F32", info.shape, bytes.back().data(), info.nbytes});
    }
  }
  longvq::write_safetensors(dir / "model.safetensors", tensors, meta);
}

// Runs `longvq ARGS` with stderr on a pseudo-terminal (stdout to /dev/null); returns what the
// terminal showed.
std::string stderr_on_terminal(const std::string& args) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  const std::string slave = ::ptsname(master);
  const std::string cmd = q(kBin) + " " + args + " < /dev/null > /dev/null 2> " + q(slave);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string shown;
  char buf[4096];
  for (;;) {  // until the child is gone and the terminal drained
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) {
        shown.append(buf, static_cast<size_t>(n));
        continue;
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
  }
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) shown.append(buf, static_cast<size_t>(n));
  ::close(master);
  return shown;
}

}  // namespace

TEST_CASE("flags: every numeric error names the flag, the value and the range in plain numbers (exit 2)",
          "[cli][hostile]") {
  struct Case {
    std::string args, flag, range;
  };
  const std::string gen = "generate" + kM + " -p x ";
  const Case cases[] = {
      {gen + "--temp nan", "--temp", "'nan' is not a finite number; give one >= 0"},
      {gen + "--temp inf", "--temp", "not a finite number"},
      {gen + "--temp -1", "--temp", ">= 0"},
      {gen + "--top-p nan", "--top-p", "from 0 to 1"},
      {gen + "--top-p 1.5", "--top-p", "1.5 is out of range; give a number from 0 to 1"},
      {gen + "--min-p nan", "--min-p", "from 0 to 1"},
      {gen + "--repeat-penalty nan", "--repeat-penalty", "> 0"},
      {gen + "--repeat-penalty 0", "--repeat-penalty", "0 is out of range; give a number > 0"},
      {gen + "-n abc", "--n-predict", "'abc' is not a whole number; give one from 0 to 2,147,483,647"},
      {gen + "-n -1", "--n-predict", "from 0 to 2,147,483,647"},
      {gen + "-n 1e3", "--n-predict", "not a whole number"},
      {gen + "--seed 18446744073709551616", "--seed", "out of range; give a whole number >= -1"},
      {gen + "--seed 2^64", "--seed", "'2^64' is not a whole number"},
      {gen + "--chunk 0", "--chunk", "from 1 to 2,147,483,647"},
      {gen + "-t 99999", "--threads", "from 0 to 4,096"},
      {"bench" + kM + " -n 9223372036854775807", "--n-gen", "from 1 to 2,147,483,647"},
      {"bench" + kM + " -p 8,0", "--n-prompt", "0 is out of range"},
      {"bench" + kM + " -d -1", "--depth", "from 0 to"},
      {"bench" + kM + " -r 0", "--repetitions", "from 1 to 1,000,000"},
      {"info" + kM + " --length 9223372036854775807", "--length", "from 1 to 2,147,483,647"},
      {"classify -m " + q(kCls) + " x.jsonl -b 0", "--batch", "from 1 to"},
      {"classify -m " + q(kCls) + " x.jsonl --pixels 0", "--pixels", "'0' is not same, any or a whole number"},
      {"perplexity" + kM + " --max-input-bytes 0", "--max-input-bytes", ">= 1"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains(c.flag + ": ") && Contains(c.range));
    CHECK_THAT(r.err, !Contains("179769313") && !Contains("0.000000") && !Contains("At Most"));  // CLI11's own wording
  }
  // Sizes in range whose activations could never fit are refused before anything is planned.
  Result r = run("info" + kM + " --length 2147483647");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("--length 2,147,483,647 would need more than") && !Contains("arena"));
  r = run("bench" + kM + " -p 8 -n 5 -d 2147483647");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("passes the longest context a state holds"));
}

TEST_CASE("commands: an unknown subcommand or flag names the closest valid one (exit 2)", "[cli][hostile]") {
  Result r = run("generat -p x");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("unknown command 'generat'; did you mean 'generate'?") && !Contains("A subcommand"));
  r = run("perplexty");
  CHECK_THAT(r.err, Contains("did you mean 'perplexity'?"));
  r = run("frobnicate");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("unknown command 'frobnicate'") && !Contains("did you mean") &&
                        Contains("generate, classify, perplexity, bench, info"));
  r = run("generate" + kM + " -p x --tmep 0");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("did you mean --temp for --tmep?"));
}

TEST_CASE("model paths: empty, FIFO, device, symbolic link loop, unreadable are named as such", "[cli][hostile]") {
  TempDir t;
  Result r = run("info -m ''");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("the model directory is empty"));
  r = run("info", "/dev/null", "LONGVQ_MODEL=");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("LONGVQ_MODEL is set but empty"));
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);
  r = run("info -m " + q(t / "fifo"), "/dev/null", kTimeout);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("is a FIFO (named pipe), not a directory"));
  r = run("info -m /dev/null");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("is a character device, not a directory"));
  fs::create_symlink(t / "loop_a", t / "loop_b");
  fs::create_symlink(t / "loop_b", t / "loop_a");
  r = run("info -m " + q(t / "loop_a"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("symbolic link loop") && !Contains("no such directory"));
  // config.json or the weights as a FIFO: refused without waiting for a writer.
  fs::create_directory(t / "m");
  fs::copy_file(kLM + "/model.safetensors", t / "m/model.safetensors");
  REQUIRE(::mkfifo((t / "m/config.json").c_str(), 0644) == 0);
  r = run("info -m " + q(t / "m"), "/dev/null", kTimeout);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("config.json is a FIFO"));
  // An unreadable directory, for a user that cannot read it (root reads everything: then the
  // check runs as nobody, where the system lets the test switch).
  fs::create_directory(t / "locked");
  fs::copy(kLM, t / "locked/m");
  fs::permissions(t.path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(t / "locked", fs::perms::none);
  const std::string as_user = ::geteuid() == 0 ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : "";
  r = shell(as_user + "\"$LONGVQ\" info -m " + q(t / "locked/m"));
  fs::permissions(t / "locked", fs::perms::owner_all);
  if (r.err.find("setpriv") != std::string::npos || r.code == 126 || r.code == 127) {
    WARN("cannot run as another user here; the unreadable-directory case was not run");
  } else {
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("Permission denied") && !Contains("no such directory"));
  }
}

TEST_CASE("inputs: a FIFO, a directory or a device where a file is needed is refused at once (exit 1)",
          "[cli][hostile]") {
  TempDir t;
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);  // no writer: opening it blocking would wait forever
  fs::create_directory(t / "dir");
  const std::string fifo = q(t / "fifo"), dir = q(t / "dir");
  const std::string cls = "classify -m " + q(kCls) + " ";
  const std::string cases[] = {"generate" + kM + " -f " + fifo, "generate" + kM + " -f " + dir,
                               "generate" + kM + " -f /dev/zero", "generate" + kM + " --state-in " + fifo + " -n 1",
                               "generate" + kM + " --state-in " + dir + " -n 1",
                               "generate" + kM + " --state-in /dev/zero -n 1", "perplexity" + kM + " -f " + fifo,
                               "perplexity" + kM + " -f /dev/zero", cls + "--format jsonl " + fifo,
                               cls + "--format jsonl /dev/zero",
                               "classify -m " + q(kFix + "/cls_pixels_postnorm_rawwin") + " --images " + fifo};
  for (const std::string& c : cases) {
    Result r = run(c, "/dev/null", kTimeout);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("not a regular file"));
  }
  Result r = run("generate" + kM + " -f " + dir);
  CHECK_THAT(r.err, Contains("is a directory, not a regular file") && Contains("pass it on stdin"));
}

TEST_CASE("inputs: a closed stdin is no input, not an empty prompt (exit 2)", "[cli][hostile]") {
  for (const std::string& c : {"generate" + kM + " -n 3", "perplexity" + kM, "classify -m " + q(kCls)}) {
    Result r = shell("\"$LONGVQ\" " + c + " <&-");
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("stdin is closed"));
  }
  // An empty stdin stays an empty prompt: the context starts from <bos>.
  CHECK(run("generate" + kM + " -n 3 --temp 0").code == 0);
}

TEST_CASE("limits: an endless stream stops at --max-input-bytes (exit 2)", "[cli][hostile]") {
  for (const std::string& c : {"generate" + kM + " -n 1", "perplexity" + kM, "classify -m " + q(kCls)}) {
    Result r = run(c + " --max-input-bytes 100000", "/dev/zero", kTimeout);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("<stdin>: stopped reading: more than --max-input-bytes 100,000"));
  }
  // A file over the cap is refused before it is read.
  Result r = run("perplexity" + kM + " -f " + q(kData + "/sample.txt") + " --max-input-bytes 1000");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("the file is 2,000 bytes, more than --max-input-bytes 1,000"));
  CHECK_THAT(run("generate --help").out, Contains("--max-input-bytes") && Contains("1073741824"));
}

TEST_CASE("state files: positions and counts out of range are refused, and so is a run that would overflow",
          "[cli][hostile]") {
  TempDir t;
  const std::string gen = "generate" + kM + " --temp 0 ";
  REQUIRE(run(gen + "-p 'Hello there' -n 0 --state-out " + q(t / "s.state")).code == 0);
  const std::string good = slurp(t.path / "s.state");
  auto with = [&](const std::string& name, auto edit) {
    StateBytes s = parse_state(good);
    edit(s);
    std::ofstream(t / name, std::ios::binary) << write_state(s);
    return q(t / name);
  };
  // Near INT64_MAX (a SIGSEGV in vq_attention before), and just past the maximum context.
  for (const int64_t pos : {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max() - 39,
                            int64_t{2147483648}, int64_t{-1}}) {
    const std::string f = with("pos.state", [&](StateBytes& s) { put(s, "pos", 0, pos); });
    for (const char* n : {"-n 0", "-n 3"}) {
      Result r = run(gen + "--state-in " + f + " " + n + " --state-out " + q(t / "again.state"));
      CHECK(r.code == 1);
      CHECK_THAT(r.err, Contains("holds the position " + std::to_string(pos)) && Contains("0..2147483647"));
      CHECK(!fs::exists(t / "again.state"));  // the poisoned state is not saved again
    }
  }
  // At the edge: continuing is refused before anything runs, naming the limit.
  const std::string edge = with("edge.state", [](StateBytes& s) { put(s, "pos", 0, int64_t{2147483645}); });
  Result r = run(gen + "--state-in " + edge + " -n 5");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("would pass the longest context a state holds (2147483647 tokens)"));
  CHECK(r.out.empty());
  CHECK(run(gen + "--state-in " + edge + " -n 2").code == 0);  // exactly up to the limit
  // Counts: negative, or more keys counted than tokens consumed.
  r = run(gen + "--state-in " + with("neg.state", [](StateBytes& s) { put(s, "layers.0.cache_n", 0, int32_t{-5}); }) + " -n 1");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("negative count"));
  r = run(gen + "--state-in " + with("many.state", [](StateBytes& s) { put(s, "layers.1.cache_n", 2, int32_t{1000}); }) +
          " -n 1");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("more than its position"));
  // A file that claims 100,000 sequences but holds one: refused before memory for them is taken.
  r = run(gen + "--state-in " + with("batch.state", [](StateBytes& s) {
            s.header["pos"]["shape"] = {100000};
            const size_t end = s.data.size();
            s.header["pos"]["data_offsets"] = {end, end + 800000};
            s.data.append(800000, '\0');
          }) + " -n 1");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("does not have the shape"));
  // A pending token outside the vocabulary.
  r = run(gen + "--state-in " + with("tok.state", [](StateBytes& s) { s.meta("pending_token") = "300"; }) + " -n 1");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("pending_token '300' is not a token id of this model (0..256)"));
}

TEST_CASE("state files: a checksum refuses damage; version 1 files load with a warning", "[cli][hostile]") {
  TempDir t;
  const std::string gen = "generate" + kM + " --temp 0 ";
  REQUIRE(run(gen + "-p 'Hello there' -n 0 --state-out " + q(t / "s.state")).code == 0);
  const StateBytes good = parse_state(slurp(t.path / "s.state"));
  CHECK(good.header["__metadata__"]["version"] == "2");
  CHECK(good.header["__metadata__"]["data_crc32"].get<std::string>().size() == 8);
  Result cont = run(gen + "--state-in " + q(t / "s.state") + " -n 8");
  REQUIRE(cont.code == 0);
  CHECK_THAT(cont.err, !Contains("warning"));
  // One flipped bit in the float data: refused.
  StateBytes s = good;
  s.tensor("layers.1.ema")[5] ^= 0x10;
  std::ofstream(t / "flip.state", std::ios::binary) << write_state(s, /*fix_checksum=*/false);
  Result r = run(gen + "--state-in " + q(t / "flip.state") + " -n 8");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("checksum") && Contains("damaged") && Contains("recompute the state"));
  // Version 1 (no checksum): the same continuation, and a warning.
  s = good;
  s.meta("version") = "1";
  s.header["__metadata__"].erase("data_crc32");
  std::ofstream(t / "v1.state", std::ios::binary) << write_state(s, false);
  r = run(gen + "--state-in " + q(t / "v1.state") + " -n 8");
  CHECK(r.code == 0);
  CHECK(r.out == cont.out);
  CHECK_THAT(r.err, Contains("warning: ") && Contains("version 1 state file has no checksum"));
  // Version 2 without its checksum, and a version this engine does not know.
  s = good;
  s.header["__metadata__"].erase("data_crc32");
  std::ofstream(t / "nocrc.state", std::ios::binary) << write_state(s, false);
  CHECK_THAT(run(gen + "--state-in " + q(t / "nocrc.state") + " -n 1").err, Contains("'data_crc32', which is missing"));
  s = good;
  s.meta("version") = "3";
  std::ofstream(t / "v3.state", std::ios::binary) << write_state(s, false);
  CHECK_THAT(run(gen + "--state-in " + q(t / "v3.state") + " -n 1").err, Contains("state version 3 is not supported"));
}

TEST_CASE("runtime overflow: a finite weight that overflows float32 is an error naming the layer (exit 1)",
          "[cli][hostile]") {
  TempDir t;
  copy_with_weight("lm_bytes_layernorm_tied", t / "lm", "layers.1.mix.norm.weight", 3e38f);
  const std::string m = " -m " + q(t / "lm");
  Result r = run("perplexity" + m + " -f " + q(kData + "/sample.txt"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("non-finite logit") && Contains("layer 1") && Contains("sample.txt bytes 0..511"));
  CHECK_THAT(r.out, !Contains("nan"));
  r = run("generate" + m + " -p Hello -n 20 --temp 0 --no-display-prompt");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("non-finite logit") && Contains("layer 1"));
  CHECK(r.out.empty());  // no NUL bytes of "text"
  copy_with_weight("cls_batchnorm_tokens", t / "cls", "layers.0.mix.norm.weight", 3e38f);
  r = run("classify -m " + q(t / "cls") + " " + q(kData + "/cls_batchnorm_tokens.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("non-finite logit") && Contains("layer 0"));
  CHECK_THAT(r.out, !Contains("nan"));
}

TEST_CASE("config.json: a missing field is named, and a config implying 10^6 layers fails fast (exit 1)",
          "[cli][hostile]") {
  TempDir t;
  fs::copy(kLM, t / "m");
  const auto config = nlohmann::json::parse(slurp(kLM + "/config.json"));
  for (const char* field : {"d_model", "format_version"}) {
    nlohmann::json c = config;
    c.erase(field);
    std::ofstream(t / "m/config.json") << c.dump();
    Result r = run("info -m " + q(t / "m"));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains(field) && !Contains("shape"));
  }
  nlohmann::json c = config;
  c["n_layers"] = 1000000;
  std::ofstream(t / "m/config.json") << c.dump();
  const auto t0 = std::chrono::steady_clock::now();
  Result r = run("info -m " + q(t / "m"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("n_layers 1000000") && Contains("does not match config.json"));
  CHECK(seconds < 1.0);
}

TEST_CASE("progress: a prompt of several chunks shows its prefill on a terminal's stderr, else nothing",
          "[cli][hostile]") {
  const std::string args = "generate" + kM + " -f " + q(kData + "/sample.txt") + " -n 1 --chunk 64 --temp 0 -t 1";
  const std::string shown = stderr_on_terminal(args);
  CHECK_THAT(shown, Contains("prefill [") && Contains("tok/s") && Contains("ETA"));
  CHECK_THAT(stderr_on_terminal(args + " --no-progress"), !Contains("prefill ["));
  CHECK_THAT(run(args).err, !Contains("prefill ["));  // stderr to a file: no bar
}
