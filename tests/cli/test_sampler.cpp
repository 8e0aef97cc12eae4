// The sampler of `longvq generate`: deterministic, filters in llama.cpp's order, plain
// inverse-CDF draw from a seeded std::mt19937_64.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "engine/serving/sampler.h"

using namespace longvq;

namespace {

SamplerParams plain(double temperature = 1.0) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0;
  p.min_p = 0.0;
  p.repeat_penalty = 1.0;
  return p;
}

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

double total(const std::vector<Candidate>& d) {
  double s = 0;
  for (const Candidate& c : d) s += c.p;
  return s;
}

}  // namespace

TEST_CASE("greedy takes the first largest logit", "[sampler]") {
  Sampler s(plain(0.0));
  const std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  CHECK(s.sample(l) == 1);
  CHECK(argmax(l) == 1);
}

TEST_CASE("uniform01 is below 1 and uses one draw", "[sampler]") {
  std::mt19937_64 a(42), b(42);
  for (int i = 0; i < 1000; ++i) {
    const double u = uniform01(a);
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
    CHECK(u == static_cast<double>(b() >> 11) / 9007199254740992.0);
  }
}

TEST_CASE("a seed gives the same tokens and another seed other tokens", "[sampler]") {
  const std::vector<float> l = logits_of({0.1, 0.2, 0.3, 0.15, 0.25});
  auto run = [&](uint64_t seed) {
    SamplerParams p = plain();
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(l));
    return out;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
}

TEST_CASE("the draw is a plain inverse CDF over the sorted distribution", "[sampler]") {
  const std::vector<float> l = logits_of({0.1, 0.2, 0.3, 0.15, 0.25});
  SamplerParams p = plain(0.7);
  p.seed = 123;
  Sampler s(p);
  const std::vector<Candidate> dist = s.distribution(l);
  std::mt19937_64 rng(123);
  for (int i = 0; i < 200; ++i) {
    const double u = uniform01(rng);
    double cum = 0;
    int32_t want = dist.back().id;
    for (const Candidate& c : dist)
      if (u < (cum += c.p)) {
        want = c.id;
        break;
      }
    REQUIRE(s.sample(l) == want);
  }
}

TEST_CASE("sampled frequencies follow the probabilities", "[sampler]") {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.15, 0.25};
  SamplerParams p = plain(1.0);
  p.seed = 99;
  Sampler s(p);
  const std::vector<float> l = logits_of(probs);
  std::map<int32_t, int> count;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.sample(l)];
  for (size_t t = 0; t < probs.size(); ++t) CHECK(std::fabs(count[static_cast<int32_t>(t)] / double(n) - probs[t]) < 0.015);
}

TEST_CASE("distribution: sorted by probability with ties by id and sums to 1", "[sampler]") {
  Sampler s(plain(1.0));
  const std::vector<Candidate> d = s.distribution(std::vector<float>{1.0f, 3.0f, 1.0f, 2.0f});
  REQUIRE(d.size() == 4);
  CHECK(d[0].id == 1);
  CHECK(d[1].id == 3);
  CHECK(d[2].id == 0);
  CHECK(d[3].id == 2);
  CHECK(total(d) == Approx(1.0));
}

TEST_CASE("top-k and top-p and min-p filter and temperature reshapes the survivors", "[sampler]") {
  const std::vector<float> l = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplerParams p = plain(1.0);
  SECTION("top-k") {
    p.top_k = 2;
    const auto d = Sampler(p).distribution(l);
    REQUIRE(d.size() == 2);
    CHECK(d[0].p == Approx(0.5 / 0.8));
  }
  SECTION("top-p keeps the smallest set reaching p") {
    p.top_p = 0.75;
    CHECK(Sampler(p).distribution(l).size() == 2);
    p.top_p = 0.81;
    CHECK(Sampler(p).distribution(l).size() == 3);
  }
  SECTION("min-p drops tokens below min-p × the top probability") {
    p.min_p = 0.29;  // floor 0.145: keeps 0.5, 0.3, 0.15
    CHECK(Sampler(p).distribution(l).size() == 3);
    p.min_p = 0.7;
    CHECK(Sampler(p).distribution(l).size() == 1);
  }
  SECTION("temperature") {
    p.temperature = 0.5;  // p ∝ p0^2
    const auto d = Sampler(p).distribution(l);
    const double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    CHECK(d[0].p == Approx(0.25 / z));
    CHECK(total(d) == Approx(1.0));
  }
}

TEST_CASE("repetition penalty over the last N tokens", "[sampler]") {
  SamplerParams p = plain(0.0);
  p.repeat_penalty = 2.0;
  p.repeat_last_n = 2;
  Sampler s(p);
  const std::vector<float> l = {4.0f, -1.0f, 3.0f, 0.5f};
  CHECK(s.sample(l) == 0);
  s.accept(0);
  s.accept(1);
  std::vector<float> pen = s.penalized(l);
  CHECK(pen[0] == 2.0f);   // positive: divided
  CHECK(pen[1] == -2.0f);  // negative: multiplied
  CHECK(pen[2] == 3.0f);
  CHECK(s.sample(l) == 2);
  s.accept(3);  // 0 falls out of the window of 2
  pen = s.penalized(l);
  CHECK(pen[0] == 4.0f);
  CHECK(pen[3] == 0.25f);
}
