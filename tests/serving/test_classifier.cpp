// The shared classifier: any batching of a stream of inputs gives each input's logits exactly as
// classifying it alone (bit for bit on the CPU), in the inputs' order, as the plan grows; bad
// inputs are named.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>
#include <vector>

#include "engine/longvq.h"
#include "engine/serving/classifier.h"

namespace fs = std::filesystem;
using namespace longvq;

namespace {

const fs::path kFixtures = fs::path(LONGVQ_FIXTURES_DIR);

// Each input alone in its own session: the oracle.
std::vector<float> alone(const std::shared_ptr<const Model>& model, const std::vector<std::vector<int32_t>>& tokens,
                         const std::vector<std::vector<float>>& values) {
  std::vector<float> out;
  const size_t N = tokens.empty() ? values.size() : tokens.size();
  for (size_t i = 0; i < N; ++i) {
    const int64_t n = static_cast<int64_t>(tokens.empty() ? values[i].size() : tokens[i].size());
    Session s(model, {.max_batch = 1, .max_length = n, .threads = 1});
    const int32_t len = static_cast<int32_t>(n);
    std::span<const float> l = tokens.empty() ? s.forward(values[i], std::span(&len, 1), n)
                                              : s.forward(tokens[i], std::span(&len, 1), n);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

}  // namespace

TEST_CASE("classifier: any batch size, any order of lengths == each input alone, bit for bit", "[classifier]") {
  std::mt19937 rng(7);
  for (const char* name : {"cls_batchnorm_tokens", "cls_rmsnorm_w0_s1", "cls_pixels_postnorm_rawwin"}) {
    INFO(name);
    auto model = Model::load(kFixtures / name);
    const bool real = model->config().embedding.kind == EmbeddingConfig::Kind::real;
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<float>> values;
    for (int i = 0; i < 23; ++i) {
      const int n = 1 + static_cast<int>(rng() % 70);
      if (real) {
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = static_cast<float>(rng() % 256) / 255.0f;
        values.push_back(v);
      } else {
        std::vector<int32_t> t(static_cast<size_t>(n));
        for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(model->config().vocab_size));
        tokens.push_back(t);
      }
    }
    const std::vector<float> want = alone(model, tokens, values);
    for (int64_t batch : {1, 3, 16, 64}) {
      Classifier c(model, {.batch = batch, .threads = 1});
      // Two calls: the plan made for the first must grow for the longer second.
      std::vector<ClassifierInput> first, second;
      for (size_t i = 0; i < (real ? values.size() : tokens.size()); ++i) {
        ClassifierInput in = real ? ClassifierInput{{}, values[i]} : ClassifierInput{tokens[i], {}};
        (i < 5 ? first : second).push_back(in);
      }
      std::vector<float> got = c.classify(first);
      const std::vector<float> rest = c.classify(second);
      got.insert(got.end(), rest.begin(), rest.end());
      CHECK(got == want);
    }
  }
}

TEST_CASE("classifier: bad inputs and models are named", "[classifier]") {
  auto tokens_model = Model::load(kFixtures / "cls_batchnorm_tokens");
  Classifier c(tokens_model, {.batch = 4, .max_length = 10});
  const std::vector<int32_t> ok = {1, 2}, bad = {1, 40}, long_one(11, 1);
  const std::vector<float> pixels = {0.5f};
  auto error_of = [&](std::vector<ClassifierInput> in) {
    try {
      c.classify(in);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of({{ok, {}}, {bad, {}}}), Catch::StartsWith("input #1: token id 40") && Catch::Contains("0..39"));
  CHECK_THAT(error_of({{long_one, {}}}), Catch::Contains("input #0 has 11 positions, more than the longest allowed (10)"));
  CHECK_THAT(error_of({{ok, {}}, {{}, {}}}), Catch::Contains("input #1 is empty"));
  CHECK_THAT(error_of({{{}, pixels}}), Catch::Contains("takes token ids"));
  CHECK(c.classify({}).empty());
  CHECK_THROWS_WITH(Classifier(Model::load(kFixtures / "lm_bytes_layernorm_tied")), Catch::Contains("language model"));
}
