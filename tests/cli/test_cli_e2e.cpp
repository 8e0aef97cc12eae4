// End-to-end tests of the `longvq` binary: every subcommand on the fixture models, --help, bad
// usage (exit 2), missing and corrupt models (exit 1 with the loader's message), prompt-cache
// continuation, classifier outputs against the fixtures' expected logits, and perplexity
// against the Python reference's number (tests/cli/make_expected.py).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/runtime/model.h"
#include "loaders/safetensors.h"
#include "tests/cli/cli_run.h"
#include "tests/cli/state_edit.h"

namespace fs = std::filesystem;
using Catch::Contains;
using Catch::StartsWith;

using namespace cli_test;

// --- help and bad usage -------------------------------------------------------------------

TEST_CASE("help teaches at every level", "[cli]") {
  Result r = run("--help");
  CHECK(r.code == 0);
  for (const char* s : {"generate", "classify", "perplexity", "bench", "info", "Examples:", "Exit codes"})
    CHECK_THAT(r.out, Contains(s));
  for (const char* sub : {"generate", "classify", "perplexity", "bench", "info"}) {
    Result h = run(std::string(sub) + " --help");
    CHECK(h.code == 0);
    CHECK_THAT(h.out, Contains("Examples:") && Contains("-m,--model") && Contains("(default:"));
  }
  CHECK_THAT(run("generate --help").out, Contains("--top-p") && Contains("(default: 0.95)") && Contains("--state-in"));
  CHECK(run("--version").code == 0);
}

TEST_CASE("bad usage exits with 2 and says what is wrong", "[cli]") {
  Result r = run("");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("subcommand"));
  r = run("generate --bogus -m " + q(kLM));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("--bogus") && Contains("--help"));
  r = run("frobnicate");
  CHECK(r.code == 2);
  CHECK(run("generate -m " + q(kLM) + " --temp -1 -p x").code == 2);
  CHECK(run("generate -m " + q(kLM) + " --top-p 1.5 -p x").code == 2);
  CHECK(run("generate -m " + q(kLM) + " -n abc -p x").code == 2);
  r = run("generate -m " + q(kLM) + " -p x -f " + q(kData + "/sample.txt"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("excludes"));
  CHECK(run("bench -m " + q(kLM) + " -o xml").code == 2);
  CHECK(run("bench -m " + q(kLM) + " -p 0").code == 2);
  CHECK(run("classify -m " + q(kFix + "/cls_batchnorm_tokens") + " data.csv").code == 2);
  CHECK(run("generate -m " + q(kLM) + " --backend tpu -p x").code == 2);
}

// --- models that cannot be used ---------------------------------------------------------------

TEST_CASE("a missing model directory is named (exit 1)", "[cli]") {
  Result r = run("generate -m /nonexistent/longvq-model -p hi");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("/nonexistent/longvq-model"));
  r = run("info", "/dev/null", "LONGVQ_MODEL=/nonexistent/from-env");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("/nonexistent/from-env"));
  // The compiled-in default, when it is not there yet, says how to get a model.
  const fs::path def = fs::path(LONGVQ_SOURCE_DIR) / "models/austen-lm";
  if (!fs::exists(def)) {
    r = run("info", "/dev/null", "env -u LONGVQ_MODEL");
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains(def.string()) && Contains("-m DIR"));
  }
}

TEST_CASE("a corrupt model gives the loader's message (exit 1)", "[cli]") {
  TempDir t;
  const fs::path dir = t.path / "broken";
  fs::copy(kLM, dir);
  fs::resize_file(dir / "model.safetensors", 100);
  Result r = run("generate -m " + q(dir.string()) + " -p hi -n 2");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("model.safetensors") && (Contains("truncated") || Contains("header")));
  fs::resize_file(dir / "model.safetensors", 4);
  r = run("info -m " + q(dir.string()));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("truncated"));
  std::ofstream(dir / "config.json") << "{\"d_model\": ";
  r = run("info -m " + q(dir.string()));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("config.json"));
}

TEST_CASE("generate on the CUDA backend: runs on a GPU, without one fails saying why (exit 1)", "[cli]") {
  Result r = run("generate --backend cuda -m " + q(kLM) + " -p Hello -n 4 --temp 0");
  if (longvq::cuda_backend_available()) {
    CHECK(r.code == 0);
    CHECK(r.out == run("generate --backend cpu -m " + q(kLM) + " -p Hello -n 4 --temp 0").out);
  } else {
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("CUDA") && Contains("use the CPU backend"));
    CHECK(run("generate --backend auto -m " + q(kLM) + " -p Hello -n 4 --temp 0").code == 0);  // auto falls back
  }
}

// --- generate -----------------------------------------------------------------------------------

TEST_CASE("generate streams the prompt and n tokens with a summary on stderr", "[cli]") {
  Result r = run("generate -m " + q(kLM) + " -p Hello -n 20 --temp 0");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, StartsWith("Hello"));
  CHECK(r.out.size() >= 25);
  for (const char* s : {"prefill:", "decode:", "tokens/s", "ms/token", "state:", "bytes per sequence", "greedy"})
    CHECK_THAT(r.err, Contains(s));
  Result v = run("generate -m " + q(kLM) + " -p Hello -n 2 -v");
  CHECK(v.code == 0);
  CHECK_THAT(v.err, Contains("graph prefill") && Contains("graph decode") && Contains("arena:"));
}

TEST_CASE("generate with a seed is reproducible and prints the seed", "[cli]") {
  const std::string args = "generate -m " + q(kLM) + " -p 'Once upon' -n 40 --temp 1.2 --top-k 0 --min-p 0 ";
  Result a = run(args + "--seed 11"), b = run(args + "--seed 11"), c = run(args + "--seed 12");
  REQUIRE(a.code == 0);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  CHECK_THAT(a.err, Contains("seed 11"));
  Result rnd = run(args);  // random seed: printed so the run can be repeated
  REQUIRE(rnd.code == 0);
  const size_t at = rnd.err.find("--seed ");
  REQUIRE(at != std::string::npos);
  const std::string seed = rnd.err.substr(at + 7, rnd.err.find_first_not_of("0123456789", at + 7) - at - 7);
  CHECK(run(args + "--seed " + seed).out == rnd.out);
}

TEST_CASE("generate: --state-out then --state-in continues exactly", "[cli]") {
  TempDir t;
  const std::string m = "generate -m " + q(kLM) + " --temp 0 ";
  const std::string prompt = q("It was on a wet Tuesday in October that the letter came.");
  Result one = run(m + "-p " + prompt + " -n 20");
  REQUIRE(one.code == 0);
  // Stop after the prompt, resume with an empty prompt.
  Result a = run(m + "-p " + prompt + " -n 0 --state-out " + q(t / "p.state"));
  REQUIRE(a.code == 0);
  Result b = run(m + "--state-in " + q(t / "p.state") + " -p '' -n 20");
  REQUIRE(b.code == 0);
  CHECK(a.out + b.out == one.out);
  CHECK(b.out == one.out.substr(a.out.size()));
  // Stop in the middle of the generation, resume (prompt from stdin: empty).
  Result c = run(m + "-p " + prompt + " -n 7 --state-out " + q(t / "g.state"));
  Result d = run(m + "--state-in " + q(t / "g.state") + " -n 13");
  REQUIRE(c.code == 0);
  REQUIRE(d.code == 0);
  CHECK(c.out + d.out == one.out);
  // A state from another model is refused.
  Result e = run("generate -m " + q(kFix + "/lm_rmsnorm_postnorm_untied") + " --state-in " + q(t / "p.state") + " -p t1");
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Contains("another model"));
  CHECK(run(m + "--state-in " + q(t / "missing.state") + " -n 1").code == 1);
  // A NaN planted in the state's EMA values (checksum made right) is refused on load, not
  // decoded from.
  StateBytes s = parse_state(slurp(t.path / "p.state"));
  put(s, "layers.0.ema", 0, std::nanf(""));
  { std::ofstream(t / "nan.state", std::ios::binary) << write_state(s); }
  Result f = run(m + "--state-in " + q(t / "nan.state") + " -n 1");
  CHECK(f.code == 1);
  CHECK_THAT(f.err, Contains("layers.0.ema") && Contains("not finite"));
}

TEST_CASE("generate: prompt from a file or stdin and empty prompts", "[cli]") {
  TempDir t;
  std::ofstream(t / "p.txt") << "Dear Sir";
  Result f = run("generate -m " + q(kLM) + " -f " + q(t / "p.txt") + " -n 3 --temp 0");
  CHECK(f.code == 0);
  CHECK_THAT(f.out, StartsWith("Dear Sir"));
  Result s = run("generate -m " + q(kLM) + " -n 3 --temp 0", t / "p.txt");
  CHECK(s.code == 0);
  CHECK(s.out == f.out);
  // Empty prompt: the model's <bos> starts the context.
  Result bos = run("generate -m " + q(kLM) + " -p '' -n 5 --temp 0");
  CHECK(bos.code == 0);
  // ... and without a <bos> there is nothing to start from: bad usage.
  Result none = run("generate -m " + q(kFix + "/lm_rmsnorm_postnorm_untied") + " -p '' -n 5");
  CHECK(none.code == 2);
  CHECK_THAT(none.err, Contains("<bos>"));
  // A vocab LM with a prompt works; its tokens are words.
  Result words = run("generate -m " + q(kFix + "/lm_rmsnorm_postnorm_untied") + " -p 't1 t2' -n 3 --temp 0");
  CHECK(words.code == 0);
  CHECK_THAT(words.out, StartsWith("t1 t2 t"));
  Result missing = run("generate -m " + q(kLM) + " -f " + q(t / "nope.txt"));
  CHECK(missing.code == 1);
  CHECK_THAT(missing.err, Contains("nope.txt"));
  Result cls = run("generate -m " + q(kFix + "/cls_batchnorm_tokens") + " -p t1");
  CHECK(cls.code == 1);
  CHECK_THAT(cls.err, Contains("classifier"));
}

// --- classify -----------------------------------------------------------------------------------

namespace {

void check_against_fixture(const std::string& name, const std::string& extra) {
  TempDir t;
  Result r = run("classify -m " + q(kFix + "/" + name) + " " + q(kData + "/" + name + ".jsonl") +
                 " --logits --metrics-json " + q(t / "m.json") + " " + extra);
  REQUIRE(r.code == 0);
  longvq::SafetensorsFile exp(kFix + "/" + name + "/expected.safetensors", longvq::LoadMode::read);
  const std::vector<float> logits = f32(exp, "logits");
  const int64_t C = exp.at("logits").shape[1];
  const auto rows = jsonl(r.out);
  REQUIRE(static_cast<int64_t>(rows.size() * C) == static_cast<int64_t>(logits.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* l = logits.data() + i * C;
    const double top = *std::max_element(l, l + C);
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(l[c] - top);
    CHECK(rows[i]["index"] == i);
    CHECK(rows[i]["label"] == std::max_element(l, l + C) - l);
    CHECK(rows[i]["target"] == rows[i]["label"]);
    for (int64_t c = 0; c < C; ++c) {
      CHECK(std::fabs(rows[i]["probs"][c].get<double>() - std::exp(l[c] - top) / z) < 1e-4);
      CHECK(std::fabs(rows[i]["logits"][c].get<double>() - l[c]) < 1e-4 * std::max(1.0, std::fabs(top)));
    }
  }
  CHECK_THAT(r.err, Contains("accuracy: 1.0000") && Contains("confusion matrix"));
  const auto m = nlohmann::json::parse(slurp(t.path / "m.json"));
  CHECK(m["accuracy"] == 1.0);
  CHECK(m["confusion"].size() == static_cast<size_t>(C));
}

}  // namespace

TEST_CASE("classify tokens JSONL reproduces the fixture's logits", "[cli]") {
  check_against_fixture("cls_batchnorm_tokens", "");
  check_against_fixture("cls_batchnorm_tokens", "-b 2");  // sorted batches with padding, input order kept
}

TEST_CASE("classify pixels JSONL reproduces the fixture's logits", "[cli]") {
  // The fixture's inputs are sequences of several lengths, not images of one size.
  check_against_fixture("cls_pixels_postnorm_rawwin", "-b 1 --pixels any");
  check_against_fixture("cls_pixels_postnorm_rawwin", "-b 3 -t 1 --pixels any");
}

TEST_CASE("classify reads stdin and writes -o", "[cli]") {
  TempDir t;
  Result r = run("classify -m " + q(kFix + "/cls_batchnorm_tokens") + " -o " + q(t / "p.jsonl"),
                 kData + "/cls_batchnorm_tokens.jsonl");
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  CHECK(jsonl(slurp(t.path / "p.jsonl")).size() == 3);
}

TEST_CASE("classify Fashion-MNIST IDX with a pixels model", "[cli]") {
  const std::string m = "classify -m " + q(kFix + "/cls_pixels_postnorm_rawwin") + " ";
  Result r = run(m + q(kRepoData + "/fashion_test1000-images-idx3-ubyte") + " --no-labels --limit 20 -b 8");
  CHECK(r.code == 0);
  CHECK(jsonl(r.out).size() == 20);
  // The labels beside the images are found, and 0..9 do not fit this 5-class model.
  r = run(m + q(kRepoData + "/fashion_test1000-images-idx3-ubyte") + " --limit 20");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("labels-idx1-ubyte") && Contains("outside this model's classes 0..4"));
  r = run(m + "--images " + q(kRepoData + "/fashion_test1000-labels-idx1-ubyte"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("not an IDX image file"));
}

TEST_CASE("classify names the bad line of an input file (exit 1)", "[cli]") {
  TempDir t;
  const std::string m = "classify -m " + q(kFix + "/cls_batchnorm_tokens") + " ";
  std::ofstream(t / "bad.jsonl") << "{\"tokens\": [1, 2]}\n{\"tokens\": [1, 99]}\n";
  Result r = run(m + q(t / "bad.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("bad.jsonl:2: token id 99"));
  std::ofstream(t / "bad2.jsonl") << "{\"tokens\": [1, 2]}\n\nnot json\n";
  r = run(m + q(t / "bad2.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("bad2.jsonl:3: not valid JSON"));
  // ListOps TSV: read, but this fixture's vocabulary is not ListOps'.
  r = run(m + q(kRepoData + "/listops_test200.tsv"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("listops_test200.tsv:2:") && Contains("'[MAX'"));
  r = run(m + q(t / "missing.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("missing.jsonl"));
  r = run("classify -m " + q(kLM) + " " + q(kData + "/cls_batchnorm_tokens.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("classifier"));
}

// --- perplexity ---------------------------------------------------------------------------------

TEST_CASE("perplexity matches the Python reference's bits per byte", "[cli]") {
  const auto expected = nlohmann::json::parse(slurp(kData + "/sample_bpb.json"));
  const double want = expected["bits_per_byte"].get<double>();
  for (const char* chunk : {"512", "97"}) {
    Result r = run("perplexity -m " + q(kLM) + " -f " + q(kData + "/sample.txt") + " --json --chunk " + chunk);
    REQUIRE(r.code == 0);
    const auto got = nlohmann::json::parse(r.out);
    CHECK(got["bytes"] == 2000);
    CHECK(std::fabs(got["bits_per_byte"].get<double>() - want) <= 1e-4 * want);
    CHECK(got["perplexity_per_byte"].get<double>() == Approx(std::pow(2.0, got["bits_per_byte"].get<double>())));
  }
  Result text = run("perplexity -m " + q(kLM), kData + "/sample.txt");  // from stdin
  CHECK(text.code == 0);
  CHECK_THAT(text.out, Contains("bits per byte:") && Contains("tokens/s"));
  Result vocab = run("perplexity -m " + q(kFix + "/lm_rmsnorm_postnorm_untied") + " -f " + q(kData + "/sample.txt"));
  CHECK(vocab.code == 1);
  CHECK_THAT(vocab.err, Contains("bytes tokenizer"));
}

// --- bench and info -----------------------------------------------------------------------------

TEST_CASE("bench an LM: pp and tg at depths with stamped rows in three formats", "[cli]") {
  Result r = run("bench -m " + q(kLM) + " -p 16,32 -n 4 -d 0,40 -r 2 --warmup 1 -o json");
  REQUIRE(r.code == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0]["test"] == "pp16");
  CHECK(rows[2]["test"] == "tg4");
  CHECK(rows[3]["test"] == "tg4 @ d40");
  for (const auto& row : rows) {
    CHECK(row["samples_ns"].size() == 2);
    CHECK(row["avg_rate"].get<double>() > 0);
    CHECK(row["state_bytes"] == 2920);
    CHECK(row["model_params"] == 10922);
    CHECK(row["weight_bytes"].get<int64_t>() > 0);
    CHECK(row["arena_bytes"].get<int64_t>() > 0);
    CHECK_FALSE(row["build_commit"].get<std::string>().empty());
    CHECK_FALSE(row["cpu"].get<std::string>().empty());
    CHECK(row["threads"].get<int>() >= 1);
  }
  Result md = run("bench -m " + q(kLM) + " -p 8 -n 2 -d 0 -r 1 -t 1");
  CHECK(md.code == 0);
  CHECK_THAT(md.out, Contains("| test") && Contains("pp8") && Contains("t/s |") && Contains("build:"));
  Result csv = run("bench -m " + q(kLM) + " -p 8 -n 2 -d 0 -r 1 -o csv");
  CHECK(csv.code == 0);
  CHECK_THAT(csv.out, StartsWith("build_commit,cpu,") && Contains(",pp8,"));
}

TEST_CASE("bench a classifier: sequences/s per length", "[cli]") {
  Result r = run("bench -m " + q(kFix + "/cls_pixels_postnorm_rawwin") + " --classify-lengths 16,32 -b 2 -r 1 -o json");
  REQUIRE(r.code == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1]["test"] == "cls32 b2");
  CHECK(rows[1]["unit"] == "seq/s");
}

TEST_CASE("info: config and parameters and state size with its formula and memory plans", "[cli]") {
  Result r = run("info -m " + q(kLM));
  REQUIRE(r.code == 0);
  for (const char* s : {"parameters    10,922", "2,920 bytes per sequence", "d·N + W·(h+1) + S·(h+1)", "prefill", "decode",
                        "arena", "layernorm"})
    CHECK_THAT(r.out, Contains(s));
  Result j = run("info -m " + q(kFix + "/cls_pixels_postnorm_rawwin") + " --json --length 784");
  REQUIRE(j.code == 0);
  const auto info = nlohmann::json::parse(j.out);
  CHECK(info["config"]["task"] == "classify");
  CHECK(info["plans"].size() == 1);
  CHECK(info["plans"][0]["max_length"] == 784);
  Result v = run("info -v -m " + q(kLM));
  CHECK_THAT(v.out, Contains("graph sequence") && Contains("graph prefill") && Contains("graph decode"));
}

// --- resource limits ------------------------------------------------------------------------------

TEST_CASE("limits: a prompt over --max-prompt and an input over --max-length are refused (exit 2)", "[cli]") {
  Result r = run("generate -m " + q(kLM) + " -p Hello -n 2 --max-prompt 3");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("5 tokens, more than --max-prompt 3"));
  r = run("classify -m " + q(kFix + "/cls_batchnorm_tokens") + " " + q(kData + "/cls_batchnorm_tokens.jsonl") +
          " --max-length 3");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("more than --max-length 3"));
}

TEST_CASE("limits: a text file larger than memory is refused before it is read (exit 1)", "[cli]") {
  TempDir t;
  std::error_code ec;
  { std::ofstream(t / "huge.txt") << "x"; }
  fs::resize_file(t / "huge.txt", uintmax_t{1} << 42, ec);  // 4 TiB, sparse
  if (ec) {
    WARN("cannot make a sparse 4 TiB file here (" << ec.message() << "); check not run");
    return;
  }
  Result r = run("perplexity -m " + q(kLM) + " -f " + q(t / "huge.txt"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("would not fit") && Contains("Split it"));
}

TEST_CASE("limits: a full disk while writing --state-out leaves no file behind (exit 1)", "[cli]") {
  TempDir t;
  // The shell ignores SIGXFSZ and caps file size at 2 KiB: the state write fails with EFBIG,
  // as it would on a full disk, while the small stdout and stderr files still fit.
  Result r = run("generate -m " + q(kLM) + " -p Hello -n 3 --temp 0 --state-out " + q(t / "ctx.state"), "/dev/null",
                 "trap '' XFSZ; ulimit -f 2;");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("ctx.state") && Contains("nothing was written"));
  CHECK(names_in(t.path).empty());  // neither the file nor a temporary
}
