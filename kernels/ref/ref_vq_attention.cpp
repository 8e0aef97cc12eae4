// vq_attention: windowed + codebook attention (longvq-model.md §3, §4; attention.py).
//
// The direct definition: every key this call holds (the ring and the chunk, or the whole
// sequence) is scored one by one as in dense_attention; keys older than the state's window enter
// through the per-code sums (U, N) of attention_step, with one max over all scores and
// qc[s] + log N_s (softmax_combine). A stateful call then pushes every key of the chunk exactly as
// push_key does after each decode step.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ref/ref_common.h"
#include "kernels/ref/ref_ops.h"

namespace longvq::ref {
namespace {

struct Key {
  int64_t position;
  int32_t code;
  const float* key;    // raw key (null when the ring keeps none)
  const float* value;  // [h]
};

double dot(const float* a, const float* b, int64_t e) {
  double s = 0;
  for (int64_t i = 0; i < e; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

void vq_attention(const OpCall& c) {
  using I = VqAttentionIn;
  const OpParams& p = c.params;
  const TensorRef& qt = c.in(I::q);
  const int64_t B = qt.shape[0], n = qt.shape[1], e = qt.shape[2];
  const int64_t h = c.in(I::v).shape[2], S = c.in(I::codebook).shape[0];
  const int64_t W = p.window;
  const bool bidir = p.bidirectional, qwk = p.quantize_window_keys;
  const float* Q = c.in_as<const float>(I::q);
  const float* K = c.in_as<const float>(I::k);
  const float* V = c.in_as<const float>(I::v);
  const int32_t* codes = c.in_as<const int32_t>(I::codes);
  const float* C = c.in_as<const float>(I::codebook);
  const float* T = c.in_as<const float>(I::rel_bias);
  const int32_t* lengths = p.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  // The state, [R, ...]: batch row b continues state row rows[b] (b without state_rows).
  int32_t* ring_codes = p.stateful && W > 0 ? c.in_as<int32_t>(I::ring_codes) : nullptr;
  float* ring_values = p.stateful && W > 0 ? c.in_as<float>(I::ring_values) : nullptr;
  float* ring_keys = p.stateful && W > 0 && !qwk ? c.in_as<float>(I::ring_keys) : nullptr;
  float* cache_u = p.stateful ? c.in_as<float>(I::cache_u) : nullptr;
  int32_t* cache_n = p.stateful ? c.in_as<int32_t>(I::cache_n) : nullptr;
  const int64_t* pos = p.stateful ? c.in_as<const int64_t>(I::pos) : nullptr;
  const int32_t* rows = c.in_as<const int32_t>(I::state_rows);
  float* O = c.out_as<float>(VqAttentionOut::o);
  const double scale = 1.0 / std::sqrt(static_cast<double>(e));  // scale = 1/sqrt(e)
  const double neg_inf = -std::numeric_limits<double>::infinity();

  std::vector<Key> keys;
  std::vector<double> score, num(static_cast<size_t>(h));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t sb = rows ? rows[b] : b;  // the state row
    const int64_t len = valid_length(lengths, b, n);
    const int64_t p0 = pos ? pos[sb] : 0;  // tokens consumed before this chunk
    // The keys this call holds, oldest first: the ring (positions p0−W .. p0−1 that are ≥ 0,
    // slot = position mod W, code −1 = empty), then the chunk (positions p0 .. p0+n−1).
    keys.clear();
    for (int64_t j = p0 - W; j < p0 && ring_codes; ++j) {
      if (j < 0) continue;                                     // ring_positions: −1 where empty
      const int64_t slot = j % W;
      const int32_t code = ring_codes[sb * W + slot];
      if (code < 0) continue;
      keys.push_back({j, code, ring_keys ? ring_keys + (sb * W + slot) * e : nullptr, ring_values + (sb * W + slot) * h});
    }
    for (int64_t j = 0; j < len; ++j)                          // key_valid: pads (j ≥ lengths[b]) are no keys
      keys.push_back({p0 + j, codes[b * n + j], K + (b * n + j) * e, V + (b * n + j) * h});

    for (int64_t i = 0; i < n; ++i) {
      const int64_t P = p0 + i;  // the query's position
      const float* q = Q + (b * n + i) * e;
      score.assign(keys.size(), neg_inf);
      double m = neg_inf;
      for (size_t kj = 0; kj < keys.size(); ++kj) {
        const Key& key = keys[kj];
        const int64_t delta = P - key.position;                // i − j
        if (!bidir && delta < 0) continue;                     // causal: keys j ≤ i
        const bool local = delta >= -W && delta <= W;          // local(i,j) = |i − j| ≤ W
        const double content = (local && !qwk) ? dot(q, key.key, e)            // key_j = K_j (raw local key)
                                               : dot(q, C + key.code * e, e);  // key_j = K̂_j = C[c_j]
        const double bias = !local ? 0.0 : bidir ? T[W - delta] : T[delta];    // T[W + j − i] | T[i − j]
        score[kj] = content * scale + bias;                    // s_ij = Q_i·key_j/sqrt(e) + bias
        m = std::max(m, score[kj]);
      }
      std::vector<double> qc(static_cast<size_t>(S), neg_inf);
      if (cache_n)
        for (int64_t s = 0; s < S; ++s)
          if (cache_n[sb * S + s] > 0) {                        // cache_scores = where(N > 0, qc, −inf)
            qc[s] = dot(q, C + s * e, e) * scale;              // qc[s] = Q·C_s/sqrt(e)
            m = std::max(m, qc[s] + std::log(static_cast<double>(cache_n[sb * S + s])));  // max over qc[s] + log N_s
          }
      float* o = O + (b * n + i) * h;
      if (m == neg_inf) {                                      // no key at all: zero output
        for (int64_t j = 0; j < h; ++j) o[j] = 0.0f;
        continue;
      }
      std::fill(num.begin(), num.end(), 0.0);
      double den = 0;
      for (size_t kj = 0; kj < keys.size(); ++kj) {
        if (score[kj] == neg_inf) continue;
        const double w = std::exp(score[kj] - m);              // w = exp(s − m)
        for (int64_t j = 0; j < h; ++j) num[j] += w * keys[kj].value[j];  // num += w @ values
        den += w;                                              // den += w.sum(-1)
      }
      for (int64_t s = 0; s < S; ++s) {
        if (qc[s] == neg_inf) continue;
        const double w = std::exp(qc[s] - m);
        for (int64_t j = 0; j < h; ++j) num[j] += w * cache_u[(sb * S + s) * h + j];  // num += e^{qc−m}·U_s
        den += w * cache_n[sb * S + s];                                                // den += e^{qc−m}·N_s
      }
      for (int64_t j = 0; j < h; ++j) o[j] = static_cast<float>(num[j] / den);        // O = num / den
    }

    if (!p.stateful) continue;
    // The state after the chunk: push_key for each token in order (after its query was answered).
    for (int64_t i = 0; i < n; ++i) {
      const int64_t P = p0 + i;
      const int32_t code = codes[b * n + i];
      const float* v = V + (b * n + i) * h;
      if (W == 0) {                                            // window == 0: straight into (U, N)
        for (int64_t j = 0; j < h; ++j) cache_u[(sb * S + code) * h + j] += v[j];  // cache_u[code] += v
        cache_n[sb * S + code] += 1;                                               // cache_n[code] += 1
        continue;
      }
      const int64_t slot = P % W;                              // slot = pos mod W
      const int32_t old = ring_codes[sb * W + slot];
      if (P >= W && old >= 0) {                                // full: position P − W leaves the window
        for (int64_t j = 0; j < h; ++j) cache_u[(sb * S + old) * h + j] += ring_values[(sb * W + slot) * h + j];
        cache_n[sb * S + old] += 1;
      }
      ring_codes[sb * W + slot] = code;                         // ring_codes[slot] = code
      for (int64_t j = 0; j < h; ++j) ring_values[(sb * W + slot) * h + j] = v[j];   // ring_values[slot] = v
      if (ring_keys)
        for (int64_t j = 0; j < e; ++j) ring_keys[(sb * W + slot) * e + j] = K[(b * n + i) * e + j];  // ring_keys[slot] = k
    }
  }
}

}  // namespace longvq::ref
