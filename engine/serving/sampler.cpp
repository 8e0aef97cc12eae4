#include "engine/serving/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace longvq {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  return best;
}

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

void Sampler::accept(int32_t token) {
  if (params_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (recent_.size() > static_cast<size_t>(params_.repeat_last_n)) recent_.pop_front();
}

std::vector<float> Sampler::penalized(std::span<const float> logits) const {
  std::vector<float> out(logits.begin(), logits.end());
  if (params_.repeat_penalty == 1.0 || recent_.empty()) return out;
  const float penalty = static_cast<float>(params_.repeat_penalty);
  std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
  for (int32_t t : seen) {
    if (t < 0 || static_cast<size_t>(t) >= out.size()) continue;
    float& l = out[static_cast<size_t>(t)];
    l = l > 0 ? l / penalty : l * penalty;  // as llama.cpp: always towards less likely
  }
  return out;
}

std::vector<Candidate> Sampler::distribution(std::span<const float> logits) const {
  const std::vector<float> l = penalized(logits);
  std::vector<int32_t> ids(l.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  auto before = [&](int32_t a, int32_t b) {
    return l[static_cast<size_t>(a)] != l[static_cast<size_t>(b)] ? l[static_cast<size_t>(a)] > l[static_cast<size_t>(b)]
                                                                    : a < b;
  };
  size_t keep = ids.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < ids.size()) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(), before);
  } else {
    std::sort(ids.begin(), ids.end(), before);
  }
  ids.resize(keep);

  // Temperature-1 probabilities of the survivors, for top-p and min-p.
  auto softmax = [&](double temperature) {
    std::vector<double> p(ids.size());
    const double top = l[static_cast<size_t>(ids[0])];
    double sum = 0;
    for (size_t i = 0; i < ids.size(); ++i) sum += p[i] = std::exp((l[static_cast<size_t>(ids[i])] - top) / temperature);
    for (double& x : p) x /= sum;
    return p;
  };
  std::vector<double> p = softmax(1.0);
  if (params_.top_p < 1.0) {
    double cum = 0;
    size_t n = 0;
    while (n < p.size()) {
      cum += p[n++];
      if (cum >= params_.top_p) break;
    }
    ids.resize(n), p.resize(n);
  }
  if (params_.min_p > 0.0) {
    const double floor = params_.min_p * p[0];
    size_t n = 1;
    while (n < p.size() && p[n] >= floor) ++n;
    ids.resize(n), p.resize(n);
  }
  p = softmax(params_.temperature);
  std::vector<Candidate> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = {ids[i], p[i]};
  return out;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0) return argmax(penalized(logits));
  const std::vector<Candidate> dist = distribution(logits);
  const double u = uniform01(rng_);
  double cum = 0;
  for (const Candidate& c : dist) {
    cum += c.p;
    if (u < cum) return c.id;
  }
  return dist.back().id;  // u within rounding of 1
}

}  // namespace longvq
