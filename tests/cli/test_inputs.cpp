// Readers of `longvq classify` inputs: JSONL, ListOps TSV, IDX; messages name file and line.
#include <catch2/catch.hpp>

#include <sstream>

#include "loaders/config.h"
#include "tools/cli/common.h"
#include "tools/cli/inputs.h"

using namespace longvq;
using namespace longvq::cli;

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

TEST_CASE("a language model is refused", "[inputs]") {
  ModelConfig lm = load_config(std::string(LONGVQ_FIXTURES_DIR) + "/lm_bytes_layernorm_tied/config.json");
  CHECK_THROWS_WITH(InputReader(lm), Catch::Contains("classify needs a classifier"));
}
