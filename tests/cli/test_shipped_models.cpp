// The shipped models (models/) through the command line a user runs, against the Python
// reference's numbers on the committed test slices (tests/data/reference_predictions.json,
// written by `python3 -m longvq_ref.slices`): identical predictions for the classifiers, the
// same bits per byte for the LM (within 1e-4 relative: fp32 engine vs fp64 reference). Run on
// the backend under test: `test_cli --backend cuda "[shipped]"` (ctest test_cli_cuda_shipped)
// checks the same numbers on the GPU.
#include <catch2/catch.hpp>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/backend_under_test.h"
#include "tests/cli/cli_run.h"

using namespace cli_test;
using Catch::Contains;

namespace {

const std::string kModels = std::string(LONGVQ_SOURCE_DIR) + "/models";

// The backend the commands run on (explicit: `auto` would pick a GPU when the machine has one).
std::string backend_flag() {
  return std::string(" --backend ") + longvq::backend_kind_name(longvq::test::backend_under_test());
}

nlohmann::json expected(const std::string& model) {
  const auto all = nlohmann::json::parse(slurp(kRepoData + "/reference_predictions.json"));
  REQUIRE(all.contains(model));
  return all[model];
}

void check_predictions(const std::string& model, const std::string& input) {
  INFO("model " << model);
  REQUIRE(fs::exists(kModels + "/" + model + "/config.json"));
  const nlohmann::json want = expected(model);
  TempDir t;
  Result r = run("classify -m " + q(kModels + "/" + model) + " " + q(input) + " -b 16 --metrics-json " +
                 q(t / "m.json") + backend_flag());
  REQUIRE(r.code == 0);
  const auto rows = jsonl(r.out);
  const auto& preds = want["predictions"];
  REQUIRE(rows.size() == preds.size());
  size_t differ = 0;
  for (size_t i = 0; i < rows.size(); ++i) differ += rows[i]["label"] != preds[i];
  CHECK(differ == 0);
  const auto m = nlohmann::json::parse(slurp(t.path / "m.json"));
  CHECK(std::fabs(m["accuracy"].get<double>() - want["accuracy"].get<double>()) < 1e-12);
}

}  // namespace

TEST_CASE("shipped listops: the reference's predictions on the ListOps test slice", "[cli][shipped]") {
  check_predictions("listops", kRepoData + "/listops_test200.tsv");
}

TEST_CASE("shipped fashion-seq: the reference's predictions on the Fashion-MNIST test slice", "[cli][shipped]") {
  check_predictions("fashion-seq", kRepoData + "/fashion_test1000-images-idx3-ubyte");
}

TEST_CASE("shipped austen-lm: the reference's bits per byte on the Austen test slice", "[cli][shipped]") {
  REQUIRE(fs::exists(kModels + "/austen-lm/config.json"));
  const nlohmann::json want = expected("austen-lm");
  Result r = run("perplexity -m " + q(kModels + "/austen-lm") + " -f " + q(kRepoData + "/austen_test20k.txt") +
                 " --json" + backend_flag());
  REQUIRE(r.code == 0);
  const auto got = nlohmann::json::parse(r.out);
  CHECK(got["bytes"] == want["bytes"]);
  const double w = want["bits_per_byte"].get<double>();
  CHECK(std::fabs(got["bits_per_byte"].get<double>() - w) <= 1e-4 * w);
}

TEST_CASE("the default model generates English-looking text", "[cli][shipped]") {
  Result r = run("generate -p \"It is a truth universally acknowledged\" -n 200 --seed 7" + backend_flag());
  REQUIRE(r.code == 0);
  // A byte LM that learned English: mostly letters and spaces, and common words.
  size_t letters = 0;
  for (char c : r.out) letters += std::isalpha(static_cast<unsigned char>(c)) || c == ' ';
  CHECK(letters > r.out.size() * 8 / 10);
  CHECK_THAT(r.out, Contains(" the ") || Contains(" of ") || Contains(" and ") || Contains(" to "));
}
