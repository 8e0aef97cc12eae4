// How far a converted copy of the shipped austen-lm (bf16 or int8 matrices) predicts from the f32
// model on the committed Austen test slice: shared by test_bf16.cpp and test_q8.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace longvq_test {

// The first n bytes of tests/data/austen_test20k.txt as byte tokens.
inline std::vector<int32_t> austen_slice_tokens(size_t n) {
  std::ifstream text(std::filesystem::path(LONGVQ_SOURCE_DIR) / "tests" / "data" / "austen_test20k.txt",
                     std::ios::binary);
  std::vector<int32_t> tokens;
  for (auto it = std::istreambuf_iterator<char>(text); it != std::istreambuf_iterator<char>() && tokens.size() < n; ++it)
    tokens.push_back(static_cast<unsigned char>(*it));
  if (tokens.size() != n) throw std::runtime_error("tests/data/austen_test20k.txt is shorter than expected");
  return tokens;
}

struct LogitGap {
  double max_abs = 0;    // largest |Δ logit| over all positions and bytes
  double max_logit = 0;  // largest |logit| of the f32 model (the scale of the above)
  double max_tv = 0;     // largest total-variation distance between the next-byte distributions
  double bits_a = 0, bits_b = 0;  // bits per byte of the text under each model
};

// a, b: [n, V] logits of the two models for `tokens` (position t predicts tokens[t + 1]).
inline LogitGap logit_gap(const std::vector<float>& a, const std::vector<float>& b, const std::vector<int32_t>& tokens,
                          int64_t V) {
  LogitGap g;
  for (size_t i = 0; i < a.size(); ++i) {
    g.max_abs = std::max(g.max_abs, std::fabs(double(a[i]) - b[i]));
    g.max_logit = std::max(g.max_logit, std::fabs(double(a[i])));
  }
  std::vector<double> pa(V), pb(V);
  auto softmax = [V](const float* row, std::vector<double>& p) {
    const double mx = *std::max_element(row, row + V);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += (p[v] = std::exp(double(row[v]) - mx));
    for (int64_t v = 0; v < V; ++v) p[v] /= z;
  };
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    softmax(a.data() + t * V, pa);
    softmax(b.data() + t * V, pb);
    double tv = 0;
    for (int64_t v = 0; v < V; ++v) tv += std::fabs(pa[v] - pb[v]);
    g.max_tv = std::max(g.max_tv, tv / 2);
    g.bits_a -= std::log2(pa[tokens[t + 1]]);
    g.bits_b -= std::log2(pb[tokens[t + 1]]);
  }
  const double n = static_cast<double>(tokens.size() - 1);
  g.bits_a /= n;
  g.bits_b /= n;
  return g;
}

}  // namespace longvq_test
