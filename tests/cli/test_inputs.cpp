// Readers of `longvq classify` inputs: JSONL, ListOps TSV, IDX; messages name file and line.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "loaders/config.h"
#include "tools/cli/common.h"
#include "tools/cli/inputs.h"

using namespace longvq;
using namespace longvq::cli;
namespace fs = std::filesystem;

namespace {

ModelConfig classifier(bool pixels) {
  ModelConfig c = load_config(std::string(LONGVQ_FIXTURES_DIR) +
                              (pixels ? "/cls_pixels_postnorm_rawwin/config.json" : "/cls_batchnorm_tokens/config.json"));
  return c;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("formats by name and labels beside IDX images", "[inputs]") {
  CHECK(detect_format("a.jsonl") == InputFormat::jsonl);
  CHECK(detect_format("-") == InputFormat::jsonl);
  CHECK(detect_format("x/listops.TSV") == InputFormat::tsv);
  CHECK(detect_format("t10k-images-idx3-ubyte") == InputFormat::idx);
  CHECK_THROWS_AS(detect_format("data.csv"), UsageError);
  CHECK_THROWS_AS(detect_format("t10k-images-idx3-ubyte.gz"), UsageError);
  CHECK(idx_labels_beside("d/fashion_test1000-images-idx3-ubyte") == "d/fashion_test1000-labels-idx1-ubyte");
  CHECK(idx_labels_beside("d/t10k-images.idx3-ubyte") == "d/t10k-labels.idx1-ubyte");
  CHECK(idx_labels_beside("d/foo").empty());
}

TEST_CASE("JSONL: tokens and text and labels", "[inputs]") {
  InputReader r(classifier(false));
  std::istringstream in("{\"tokens\": [1, 2, 3], \"label\": 4}\n\n{\"text\": \"t5 t6\", \"label\": 0, \"id\": \"x\"}\n");
  Dataset d = r.read_jsonl(in, "in.jsonl");
  REQUIRE(d.examples.size() == 2);
  CHECK(d.has_labels);
  CHECK(d.examples[0].tokens == std::vector<int32_t>{1, 2, 3});
  CHECK(d.examples[1].tokens == std::vector<int32_t>{5, 6});
  CHECK(d.examples[1].label == 0);
}

TEST_CASE("JSONL: every bad line is named", "[inputs]") {
  InputReader r(classifier(false));
  auto err = [&](const std::string& text) {
    return error_of([&] {
      std::istringstream in(text);
      r.read_jsonl(in, "in.jsonl");
    });
  };
  CHECK_THAT(err("{\"tokens\": [1]}\n{oops\n"), Catch::StartsWith("in.jsonl:2: not valid JSON"));
  CHECK_THAT(err("{\"tokens\": [1e999]}\n"), Catch::StartsWith("in.jsonl:1: not valid JSON") &&  // found by fuzz_inputs
                                                 Catch::Contains("number overflow"));
  CHECK_THAT(err("{\"tokens\": [1, 40]}\n"), Catch::Contains("in.jsonl:1: token id 40") && Catch::Contains("0..39"));
  CHECK_THAT(err("{\"tokens\": []}\n"), Catch::Contains("in.jsonl:1: the input is empty"));
  CHECK_THAT(err("{\"tokens\": [1], \"label\": 5}\n"), Catch::Contains("label 5 is outside this model's classes 0..4"));
  CHECK_THAT(err("{\"pixels\": [1]}\n"), Catch::Contains("takes tokens"));
  CHECK_THAT(err("{\"text\": \"t1 zzz\"}\n"), Catch::Contains("in.jsonl:1:") && Catch::Contains("zzz"));
  CHECK_THAT(err("[1, 2]\n"), Catch::Contains("expected a JSON object"));
  CHECK_THAT(err("{\"label\": 1}\n"), Catch::Contains("no input"));
}

TEST_CASE("JSONL: typos of our keys, repeated keys and half-labelled files are errors naming the line; other keys are kept", "[inputs]") {
  InputReader r(classifier(false));
  auto err = [&](const std::string& text, const ReadOptions& options = {}) {
    return error_of([&] {
      std::istringstream in(text);
      r.read_jsonl(in, "in.jsonl", options);
    });
  };
  CHECK_THAT(err("{\"tokens\": [1], \"lable\": 2}\n"),
             Catch::StartsWith("in.jsonl:1: unknown key \"lable\" (did you mean \"label\"?)") &&
                 Catch::Contains("optionally \"label\" and \"id\""));
  CHECK_THAT(err("{\"tokens\": [1], \"probs\": 2}\n"), Catch::Contains("the key \"probs\" is one classify writes"));
  // Any other key is the user's: kept, in order, as JSON members for the prediction line.
  std::istringstream extra("{\"weight\": 2, \"tokens\": [1], \"meta\": {\"b\": 1, \"a\": [true]}}\n");
  CHECK(r.read_jsonl(extra, "in.jsonl").examples[0].echo == "\"weight\":2,\"meta\":{\"b\":1,\"a\":[true]}");
  CHECK_THAT(err("{\"tokens\": [1], \"label\": 1, \"label\": 2}\n"),
             Catch::StartsWith("in.jsonl:1: the key \"label\" appears twice"));
  CHECK_THAT(err("{\"tokens\": [1], \"tokens\": [2]}\n"), Catch::Contains("\"tokens\" appears twice"));
  // A nested object's keys are its own: {"id": ...} is only checked for its type.
  CHECK_THAT(err("{\"tokens\": [1], \"id\": {\"a\": 1, \"a\": 2}}\n"), Catch::Contains("\"id\" must be a string or an integer"));
  CHECK_THAT(err("{\"tokens\": [1], \"label\": 1}\n{\"tokens\": [2]}\n"),
             Catch::StartsWith("in.jsonl:2: has no label, but in.jsonl:1 has one"));
  CHECK_THAT(err("{\"tokens\": [1]}\n\n{\"tokens\": [2], \"label\": 0}\n"),
             Catch::StartsWith("in.jsonl:3: has a label, but in.jsonl:1 has none"));
  // --no-labels: labels are not read, so neither checked nor mixed.
  ReadOptions ignore;
  ignore.ignore_labels = true;
  std::istringstream mixed("{\"tokens\": [1], \"label\": 99}\n{\"tokens\": [2]}\n");
  const Dataset d = r.read_jsonl(mixed, "in.jsonl", ignore);
  CHECK(d.examples.size() == 2);
  CHECK_FALSE(d.has_labels);
  // "id" is kept (as JSON text) for the predictions.
  std::istringstream ids("{\"tokens\": [1], \"id\": \"q-7\"}\n{\"tokens\": [2], \"id\": 12}\n");
  const Dataset with_ids = r.read_jsonl(ids, "in.jsonl");
  CHECK(with_ids.examples[0].id == "\"q-7\"");
  CHECK(with_ids.examples[1].id == "12");
}

TEST_CASE("JSONL: pixels are whole numbers 0..255, as many per input as the rule says", "[inputs]") {
  InputReader r(classifier(true));
  auto err = [&](const std::string& text, int64_t pixels = kSamePixels) {
    return error_of([&] {
      std::istringstream in(text);
      ReadOptions options;
      options.pixels = pixels;
      r.read_jsonl(in, "p.jsonl", options);
    });
  };
  CHECK_THAT(err("{\"pixels\": [1, 2.5, 3]}\n"), Catch::StartsWith("p.jsonl:1: pixel value 2.5 at \"pixels\"[1] is not a whole number"));
  CHECK(err("{\"pixels\": [1, 2.0, 3]}\n").empty());  // 2.0 is the byte 2
  CHECK_THAT(err("{\"pixels\": [1, 2, 3]}\n{\"pixels\": [1, 2]}\n"),
             Catch::StartsWith("p.jsonl:2: 2 pixels, but p.jsonl:1 has 3"));
  CHECK(err("{\"pixels\": [1, 2, 3]}\n{\"pixels\": [1, 2]}\n", kAnyPixels).empty());
  CHECK_THAT(err("{\"pixels\": [1, 2, 3]}\n", 784), Catch::StartsWith("p.jsonl:1: 3 pixels, but --pixels says 784"));
  std::string image = "{\"pixels\": [1";
  for (int i = 1; i < 784; ++i) image += ", 1";
  CHECK(err(image + "]}\n", 784).empty());
}

TEST_CASE("JSONL: pixels are normalized by the model's tokenizer", "[inputs]") {
  ModelConfig cfg = classifier(true);
  InputReader r(cfg);
  std::istringstream in("{\"pixels\": [0, 255, 128]}\n");
  Dataset d = r.read_jsonl(in, "p.jsonl");
  REQUIRE(d.examples.size() == 1);
  CHECK_FALSE(d.has_labels);
  Tokenizer tok(cfg.tokenizer);
  CHECK(d.examples[0].values == tok.encode_pixels(std::vector<uint8_t>{0, 255, 128}));
  std::istringstream bad("{\"pixels\": [0, 256]}\n");
  CHECK_THAT(error_of([&] { r.read_jsonl(bad, "p.jsonl"); }), Catch::Contains("p.jsonl:1: pixel value 256"));
}

TEST_CASE("TSV: ListOps layout", "[inputs]") {
  InputReader r(classifier(false));
  std::istringstream in("Source\tTarget\nt1 t2 t3\t2\nt4\t0\n");
  Dataset d = r.read_tsv(in, "l.tsv");
  REQUIRE(d.examples.size() == 2);
  CHECK(d.examples[0].tokens == std::vector<int32_t>{1, 2, 3});
  CHECK(d.examples[0].label == 2);
  std::istringstream bad("Source\tTarget\nt1\t2\nt1 t2\tx\n");
  CHECK_THAT(error_of([&] { r.read_tsv(bad, "l.tsv"); }), Catch::StartsWith("l.tsv:3: label 'x'"));
}

TEST_CASE("TSV: exactly one tab and a label on every line", "[inputs]") {
  InputReader r(classifier(false));
  auto err = [&](const std::string& text, bool ignore_labels = false) {
    return error_of([&] {
      std::istringstream in(text);
      ReadOptions options;
      options.ignore_labels = ignore_labels;
      r.read_tsv(in, "l.tsv", options);
    });
  };
  CHECK_THAT(err("t1 t2\t1\t2\n"), Catch::StartsWith("l.tsv:1: expected 'TOKENS<TAB>LABEL' (ListOps TSV) with one tab, found 2"));
  CHECK_THAT(err("t1 t2\n"), Catch::Contains("found none"));
  CHECK_THAT(err("Source\tTarget\nt1 t2\t\n"), Catch::StartsWith("l.tsv:2: the label after the tab is empty"));
  CHECK(err("Source\tTarget\nt1 t2\t\n", /*ignore_labels=*/true).empty());
}

TEST_CASE("IDX: dimensions are multiplied with overflow checks and held to --pixels", "[inputs]") {
  const fs::path dir = fs::temp_directory_path() / ("longvq_idx_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  InputReader r(classifier(true));
  // 2^31 × 2^31 × 4 wraps to 0 in 64 bits: "0 bytes of images" would have matched 16 bytes.
  const fs::path wrap = write("w-images-idx3-ubyte", be32(0x803) + be32(0x80000000u) + be32(0x80000000u) + be32(4));
  CHECK_THAT(error_of([&] { r.read_idx(wrap, std::nullopt); }), Catch::Contains("need more than 2^64 bytes"));
  const fs::path small = write("s-images-idx3-ubyte", be32(0x803) + be32(3) + be32(14) + be32(14) + std::string(3 * 196, '\x07'));
  const Dataset d = r.read_idx(small, std::nullopt);
  CHECK(d.examples.size() == 3);
  CHECK(d.rows == 14);
  ReadOptions want784;
  want784.pixels = 784;
  CHECK_THAT(error_of([&] { r.read_idx(small, std::nullopt, want784); }), Catch::Contains("196 pixels, but --pixels says 784"));
  fs::remove_all(dir);
}

TEST_CASE("a language model is refused", "[inputs]") {
  ModelConfig lm = load_config(std::string(LONGVQ_FIXTURES_DIR) + "/lm_bytes_layernorm_tied/config.json");
  CHECK_THROWS_WITH(InputReader(lm), Catch::Contains("classify needs a classifier"));
}
