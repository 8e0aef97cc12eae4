#include "engine/runtime/state_layout.h"

namespace longvq {

std::string state_tensor_name(int layer, std::string_view leaf) {
  if (layer < 0) return "state." + std::string(leaf);
  return "state.layers." + std::to_string(layer) + "." + std::string(leaf);
}

std::vector<StateTensor> state_layout(const ModelConfig& c) {
  const int64_t d = c.d_model, h = c.hidden_dim, e = c.z_dim, W = c.attention.window, S = c.attention.codebook_size;
  std::vector<StateTensor> t;
  auto add = [&](int layer, const char* leaf, DType dtype, std::vector<int64_t> row_shape, int32_t empty = 0) {
    t.push_back({state_tensor_name(layer, leaf), layer, leaf, dtype, std::move(row_shape), empty});
  };
  add(-1, "pos", DType::i64, {});                               // tokens consumed
  for (int i = 0; i < c.n_layers; ++i) {
    add(i, "ema", DType::f32, {d, c.ema_ndim});                 // EMA state H [d, N]
    add(i, "ring_codes", DType::i32, {W}, -1);                  // codes of the W newest keys (−1: empty)
    add(i, "ring_values", DType::f32, {W, h});                  // their values
    if (!c.attention.quantize_window_keys) add(i, "ring_keys", DType::f32, {W, e});  // their raw keys
    add(i, "cache_u", DType::f32, {S, h});                      // per-code sums of values that left the window
    add(i, "cache_n", DType::i32, {S});                         // per-code counts
  }
  return t;
}

}  // namespace longvq
