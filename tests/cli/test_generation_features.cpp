// The generation features the CLI shares with the server (engine/serving): stop strings, <eos>,
// --json with log-probabilities, -i conversations, --prompts as one continuous batch (each result
// == its solo run, in input order), perplexity --per-token, bench --decode-batch.
#include <cmath>
#include <fstream>
#include <string>

#include "tests/cli/cli_run.h"
#include "tools/cli/common.h"

using namespace cli_test;
using Catch::Matchers::Contains;
using longvq::cli::strf;

namespace {
const std::string kAusten = std::string(LONGVQ_SOURCE_DIR) + "/models/austen-lm";

std::string gen(const std::string& extra) { return "generate -m " + q(kAusten) + " -t 1 --no-display-prompt " + extra; }
}  // namespace

TEST_CASE("generate: --stop cuts the text before the stop string; --json carries tokens and logprobs", "[cli][generation]") {
  const Result free = run(gen("-p 'It is a truth' -n 60 --temp 0"));
  REQUIRE(free.code == 0);
  const size_t at = free.out.find(' ', 3);
  REQUIRE(at != std::string::npos);
  const std::string word = free.out.substr(at, 3);  // " xy": occurs in the free text
  const Result cut = run(gen("-p 'It is a truth' -n 60 --temp 0 --stop " + q(word) + " --stop ZZZZ"));
  REQUIRE(cut.code == 0);
  CHECK(cut.out == free.out.substr(0, free.out.find(word)));
  const Result js = run(gen("-p 'It is a truth' -n 8 --temp 0 --json --logprobs 2"));
  REQUIRE(js.code == 0);
  const auto j = nlohmann::json::parse(js.out);
  CHECK(j["text"] == free.out.substr(0, j["text"].get<std::string>().size()));
  CHECK(j["finish_reason"] == "length");
  REQUIRE(j["tokens"].size() == 8);
  for (const auto& t : j["tokens"]) {
    CHECK(t["logprob"].get<double>() <= 0);
    CHECK(t["top_logprobs"].size() == 2);
  }
  CHECK(j["usage"]["completion_tokens"] == 8);
  const Result bad = run(gen("-p x --logprobs 2"));
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("--logprobs needs --json"));
}

TEST_CASE("generate -i: each stdin line is a turn; the state carries across", "[cli][generation]") {
  TempDir t;
  std::ofstream(t / "turns.txt") << "Emma said\nand then\n";
  const Result r = run(gen("-i -p 'Chapter 1' -n 12 --temp 0 --json"), t / "turns.txt");
  REQUIRE(r.code == 0);
  const auto turns = nlohmann::json::parse(r.out);
  REQUIRE(turns.size() == 3);  // the prompt, then two lines
  // The same conversation as one context: the second turn continues everything before it.
  const std::string context = "Chapter 1" + turns[0]["text"].get<std::string>() + "Emma said\n" +
                              turns[1]["text"].get<std::string>() + "and then\n";
  const Result whole = run(gen("-p " + q(context) + " -n 12 --temp 0"));
  REQUIRE(whole.code == 0);
  CHECK(whole.out == turns[2]["text"].get<std::string>());
}

TEST_CASE("generate --prompts: one continuous batch, results in input order == each prompt alone", "[cli][generation]") {
  TempDir t;
  {
    std::ofstream f(t / "prompts.jsonl");
    for (int i = 0; i < 10; ++i)
      f << "{\"id\": \"p" << i << "\", \"prompt\": \"Chapter " << i << ". It was\", \"max_tokens\": " << 5 + i * 3
        << ", \"seed\": " << 40 + i << (i % 3 == 0 ? ", \"temperature\": 0" : "") << "}\n";
  }
  const Result r = run(gen("--prompts " + q(t / "prompts.jsonl") + " -np 4 -o " + q(t / "out.jsonl")));
  REQUIRE(r.code == 0);
  const auto results = jsonl(slurp(t / "out.jsonl"));
  REQUIRE(results.size() == 10);
  for (int i = 0; i < 10; ++i) {
    INFO("prompt " << i);
    CHECK(results[i]["index"] == i);
    CHECK(results[i]["id"] == strf("p%d", i));
    const Result alone = run(gen(strf("-p 'Chapter %d. It was' -n %d --seed %d%s", i, 5 + i * 3, 40 + i,
                                      i % 3 == 0 ? " --temp 0" : "")));
    REQUIRE(alone.code == 0);
    CHECK(results[i]["text"] == alone.out);
  }
  std::ofstream(t / "bad.jsonl") << "{\"prompt\": \"ok\"}\n{\"prompt\": \"x\", \"max_token\": 3}\n";
  const Result bad = run(gen("--prompts " + q(t / "bad.jsonl")));
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Contains("bad.jsonl:2: unknown key \"max_token\""));
}

TEST_CASE("perplexity --per-token: one JSONL line per byte, summing to the bits per byte", "[cli][generation]") {
  const std::string text = kData + "/sample.txt";
  const Result sum = run("perplexity -m " + q(kLM) + " -f " + q(text) + " --json -t 1");
  REQUIRE(sum.code == 0);
  const double bpb = nlohmann::json::parse(sum.out)["bits_per_byte"];
  const Result per = run("perplexity -m " + q(kLM) + " -f " + q(text) + " --per-token -t 1 --chunk 7");
  REQUIRE(per.code == 0);
  const auto lines = jsonl(per.out);
  REQUIRE(lines.size() == slurp(text).size());
  double nats = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(lines[i]["position"] == i);
    nats -= lines[i]["logprob"].get<double>();
  }
  CHECK(std::fabs(nats / static_cast<double>(lines.size()) / std::log(2.0) - bpb) < 1e-6);
  CHECK_THAT(per.err, Contains("bits per byte"));
}

TEST_CASE("bench --decode-batch: rows decoding together, tokens counted per row", "[cli][generation]") {
  const Result r = run("bench -m " + q(kLM) + " -t 1 -p 8 -n 4 -d 0,20 --decode-batch 1,3 -r 1 --warmup 0 -o json");
  REQUIRE(r.code == 0);
  const auto rows = nlohmann::json::parse(r.out);
  int batched = 0;
  for (const auto& row : rows)
    if (row["test"].get<std::string>().find(" b3") != std::string::npos) {
      ++batched;
      CHECK(row["batch"] == 3);
    }
  CHECK(batched == 2);  // at depths 0 and 20
}
