// Hostile inputs, the output side (docs/hostile-inputs.md): what the binary writes must never
// destroy anything (a device node, an input), never be half written (two writers, a full disk,
// `ulimit -f`), never be lost silently (stdout full or closed), and no signal the run itself
// provokes (SIGXFSZ, SIGPIPE, SIGBUS) may kill it. Every test runs the real binary.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/cli/cli_run.h"

namespace fs = std::filesystem;
using Catch::Contains;

using namespace cli_test;

namespace {

bool is_char_device(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

const std::string kCls = kFix + "/cls_batchnorm_tokens";
const std::string kClsData = kData + "/cls_batchnorm_tokens.jsonl";

std::string generate_to(const std::string& state_out, const std::string& prompt = "Hello") {
  return "generate -m " + q(kLM) + " -p " + q(prompt) + " -n 3 --temp 0 --state-out " + q(state_out);
}

}  // namespace

TEST_CASE("outputs: a device, FIFO or directory is refused before the run and never replaced (exit 2)", "[cli][hostile]") {
  TempDir t;
  // /dev/null itself: replacing it (as root) would break the whole machine.
  Result r = run(generate_to("/dev/null"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("/dev/null") && Contains("character device") && Contains("not replaced"));
  CHECK(is_char_device("/dev/null"));
  CHECK(run("classify -m " + q(kCls) + " " + q(kClsData) + " -o /dev/null").code == 2);
  CHECK(is_char_device("/dev/null"));
  // A copy of the node, where the test may make one (root): the write-then-rename of old
  // replaced it with a regular file and exited 0.
  if (::mknod((t / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    r = run(generate_to(t / "null"));
    CHECK(r.code == 2);
    CHECK(is_char_device(t / "null"));
    CHECK(run("classify -m " + q(kCls) + " " + q(kClsData) + " --metrics-json " + q(t / "null")).code == 2);
    CHECK(is_char_device(t / "null"));
  } else {
    WARN("mknod is not allowed here; the device-copy case ran against /dev/null only");
  }
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);
  r = run(generate_to(t / "fifo"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("FIFO"));
  CHECK(fs::is_fifo(t / "fifo"));
  // A directory: a clear message, and no DIR.tmp beside it.
  fs::create_directory(t / "dir");
  r = run(generate_to(t / "dir"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("is a directory; give a file path"));
  r = run("classify -m " + q(kCls) + " " + q(kClsData) + " -o " + q(t / "dir"));
  CHECK(r.code == 2);
  const std::vector<std::string> left = names_in(t.path);
  CHECK((left == std::vector<std::string>{"dir", "fifo", "null"} || left == std::vector<std::string>{"dir", "fifo"}));
  CHECK(fs::is_empty(t / "dir"));
  // A missing directory is said before the run, not after it.
  r = run(generate_to(t / "no/such/dir/x.state"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("does not exist"));
}

TEST_CASE("outputs: a symbolic link is written through, the link stays", "[cli][hostile]") {
  TempDir t;
  std::ofstream(t / "real.state") << "old";
  fs::create_symlink(t / "real.state", t / "link.state");
  REQUIRE(run(generate_to(t / "link.state")).code == 0);
  CHECK(fs::is_symlink(t / "link.state"));
  CHECK(slurp(t.path / "real.state").size() > 100);
  CHECK(run("generate -m " + q(kLM) + " --state-in " + q(t / "link.state") + " -n 1").code == 0);
  CHECK(names_in(t.path) == std::vector<std::string>{"link.state", "real.state"});
}

TEST_CASE("outputs: an output that is one of the inputs is refused (exit 2)", "[cli][hostile]") {
  TempDir t;
  fs::copy_file(kClsData, t / "in.jsonl");
  const std::string before = slurp(t.path / "in.jsonl");
  Result r = run("classify -m " + q(kCls) + " " + q(t / "in.jsonl") + " -o " + q(t / "in.jsonl"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("same file as the input") && Contains("give another output path"));
  fs::create_symlink(t / "in.jsonl", t / "alias.jsonl");  // the same file by another name
  CHECK(run("classify -m " + q(kCls) + " " + q(t / "in.jsonl") + " --metrics-json " + q(t / "alias.jsonl")).code == 2);
  CHECK(run("classify -m " + q(kCls) + " " + q(t / "in.jsonl") + " -o " + q(t / "p.jsonl") + " --metrics-json " +
            q(t / "p.jsonl")).code == 2);
  CHECK(slurp(t.path / "in.jsonl") == before);
  // generate: the prompt file and the model's own files.
  std::ofstream(t / "prompt.txt") << "Dear Sir";
  r = run("generate -m " + q(kLM) + " -f " + q(t / "prompt.txt") + " -n 1 --state-out " + q(t / "prompt.txt"));
  CHECK(r.code == 2);
  CHECK(slurp(t.path / "prompt.txt") == "Dear Sir");
  fs::copy(kLM, t / "model");
  const std::string weights = slurp(t.path / "model/model.safetensors");
  CHECK(run("generate -m " + q(t / "model") + " -p x -n 1 --state-out " + q(t / "model/model.safetensors")).code == 2);
  CHECK(slurp(t.path / "model/model.safetensors") == weights);
  // Continuing a state and saving it back to the same file is fine: it is read whole first.
  REQUIRE(run(generate_to(t / "ctx.state")).code == 0);
  r = run("generate -m " + q(kLM) + " --state-in " + q(t / "ctx.state") + " -n 4 --temp 0 --state-out " + q(t / "ctx.state"));
  CHECK(r.code == 0);
  CHECK(run("generate -m " + q(kLM) + " --state-in " + q(t / "ctx.state") + " -n 1").code == 0);
}

TEST_CASE("outputs: two processes writing one path at once: one wins whole", "[cli][hostile]") {
  TempDir t;
  // What each writer alone makes, to compare the survivor with byte for byte.
  REQUIRE(run(generate_to(t / "a.state", "aaaa aaaa aaaa")).code == 0);
  REQUIRE(run(generate_to(t / "b.state", "bb")).code == 0);
  const std::string a = slurp(t.path / "a.state"), b = slurp(t.path / "b.state");
  REQUIRE(a != b);
  const std::string limit1 = "classify -m " + q(kCls) + " " + q(kClsData) + " --limit 1 -o ";
  const std::string limit3 = "classify -m " + q(kCls) + " " + q(kClsData) + " --limit 3 -o ";
  REQUIRE(run(limit1 + q(t / "p1.jsonl")).code == 0);
  REQUIRE(run(limit3 + q(t / "p3.jsonl")).code == 0);
  const std::string p1 = slurp(t.path / "p1.jsonl"), p3 = slurp(t.path / "p3.jsonl");
  const std::string state = q(t / "same.state"), out = q(t / "same.jsonl");
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    Result r = shell("(\"$LONGVQ\" " + generate_to(t / "same.state", "aaaa aaaa aaaa") + " >/dev/null 2>&1; echo $? > " +
                     q(t / "rc1") + ") & (\"$LONGVQ\" " + generate_to(t / "same.state", "bb") + " >/dev/null 2>&1; echo $? > " +
                     q(t / "rc2") + ") & (\"$LONGVQ\" " + limit1 + out + " 2>/dev/null; echo $? > " + q(t / "rc3") +
                     ") & (\"$LONGVQ\" " + limit3 + out + " 2>/dev/null; echo $? > " + q(t / "rc4") + ") & wait");
    REQUIRE(r.code == 0);
    for (const char* rc : {"rc1", "rc2"}) CHECK(slurp(t.path / rc) == "0\n");
    // classify -o holds its output (OUT.partial, locked) while it runs: a second job that
    // overlaps it is refused (exit 1), never interleaved; one of the two always finishes.
    const std::string rc3 = slurp(t.path / "rc3"), rc4 = slurp(t.path / "rc4");
    CHECK((rc3 == "0\n" || rc3 == "1\n"));
    CHECK((rc4 == "0\n" || rc4 == "1\n"));
    CHECK((rc3 == "0\n" || rc4 == "0\n"));
    const std::string got = slurp(t.path / "same.state");
    CHECK((got == a || got == b));
    const std::string lines = slurp(t.path / "same.jsonl");
    CHECK((lines == p1 || lines == p3));
    CHECK(names_in(t.path).size() == 10);  // a, b, p1, p3, same.state, same.jsonl, rc1..rc4: no temporaries
  }
}

TEST_CASE("limits: a file-size limit (ulimit -f) is a write error, not a SIGXFSZ death (exit 1)", "[cli][hostile]") {
  TempDir t;
  // No `trap '' XFSZ` here: the program itself must not be killed by the signal.
  const std::string limit = "ulimit -f 2; cd " + q(t.path.string()) + "; ";
  Result r = shell(limit + "\"$LONGVQ\" " + generate_to("ctx.state"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("ctx.state") && Contains("File too large") && Contains("nothing was written"));
  std::string many;
  for (int i = 0; i < 200; ++i) many += "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n";
  std::ofstream(t / "many.jsonl") << many;
  r = shell(limit + "\"$LONGVQ\" classify -m " + q(kCls) + " many.jsonl -o p.jsonl");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("p.jsonl") && Contains("nothing was written"));
  r = shell(limit + "\"$LONGVQ\" classify -m " + q(kCls) + " many.jsonl > stdout.jsonl");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("could not write the output"));
  CHECK(names_in(t.path) == std::vector<std::string>{"many.jsonl", "stdout.jsonl"});
}

TEST_CASE("outputs: a stdout that cannot be written is a failure for every subcommand (exit 1)", "[cli][hostile]") {
  const std::string lm = " -m " + q(kLM);
  for (const std::string& cmd :
       {"generate" + lm + " -p hi -n 3", "perplexity" + lm + " -f " + q(kData + "/sample.txt"), "info" + lm,
        "bench" + lm + " -p 8 -n 2 -d 0 -r 1", "classify -m " + q(kCls) + " " + q(kClsData), std::string("--help")}) {
    Result full = shell("\"$LONGVQ\" " + cmd + " > /dev/full");
    CHECK(full.code == 1);
    CHECK_THAT(full.err, Contains("could not write the output"));
    Result closed = shell("\"$LONGVQ\" " + cmd + " >&-");
    CHECK(closed.code == 1);
    CHECK_THAT(closed.err, Contains("could not write the output"));
  }
  // A reader that goes away (SIGPIPE is ignored, so EPIPE): exit 1, and no --state-out of text
  // that was never delivered.
  TempDir t;
  Result r = shell("{ \"$LONGVQ\" generate" + lm + " -p hi -n 1000000 --temp 0 --state-out " + q(t / "s.state") +
                   " 2> " + q(t / "err") + "; echo $? > " + q(t / "rc") + "; } | head -c 1 > /dev/null");
  CHECK(slurp(t.path / "rc") == "1\n");
  CHECK_THAT(slurp(t.path / "err"), Contains("could not write the output (stdout: Broken pipe)") &&
                                        Contains("--state-out was not written"));
  CHECK(!fs::exists(t / "s.state"));
}

TEST_CASE("signals: a model file truncated while a run has it mapped ends the run with an error, not SIGBUS",
          "[cli][hostile]") {
  TempDir t;
  fs::copy(kLM, t / "m");
  for (const bool no_mmap : {false, true}) {
    INFO((no_mmap ? "--no-mmap" : "mmap"));
    fs::copy_file(kLM + "/model.safetensors", t / "m/model.safetensors", fs::copy_options::overwrite_existing);
    // A bounded run: if the truncation went unnoticed it would still end (in seconds), and fail.
    const std::string cmd = "exec " + q(kBin) + " generate -m " + q(t / "m") + " -p Hello --temp 0" +
                            (no_mmap ? " -n 2000 --no-mmap" : " -n 300000") + " 2> " + q(t / "err");
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char first[5];
    // The prompt echoed: the model is loaded (and mapped) and decoding has begun.
    REQUIRE(std::fread(first, 1, 5, p) == 5);
    fs::resize_file(t / "m/model.safetensors", 100);
    while (std::fgetc(p) != EOF) {
    }
    const int status = ::pclose(p);
    REQUIRE(WIFEXITED(status));
    const std::string err = slurp(t.path / "err");
    if (no_mmap) {
      CHECK(WEXITSTATUS(status) == 0);  // the weights were read into memory: the file no longer matters
    } else {
      CHECK(WEXITSTATUS(status) == 1);
      CHECK_THAT(err, Contains("model.safetensors") && Contains("changed on disk") && Contains("--no-mmap"));
    }
  }
}
