// The decoding state's tensors (design page §4), written once: State allocates them, the graph
// builder names them as inputs of the stateful ops, and the state file stores them under the
// same names (without the "state." prefix; docs/file-formats.md §3).
//
// Every tensor is [R, ...]: one row per sequence, so a row is a contiguous slice of each tensor
// (rows can be reset, copied and saved one at a time).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/ops/op.h"
#include "loaders/config.h"

namespace longvq {

struct StateTensor {
  std::string name;                // "state.pos", "state.layers.{i}.ema", ...
  int layer;                       // -1 for pos
  std::string leaf;                // pos, ema, ring_codes, ring_values, ring_keys, cache_u, cache_n
  DType dtype;
  std::vector<int64_t> row_shape;  // one sequence's shape (the State prepends its rows)
  int32_t empty_value;             // what every element holds in an empty context: 0, or −1 (ring_codes)

  std::string file_name() const { return name.substr(6); }  // the name in a state file
};

// In file order: pos, then per layer ema, ring_codes, ring_values, [ring_keys,] cache_u, cache_n
// (ring_keys only when window keys are not quantized).
std::vector<StateTensor> state_layout(const ModelConfig& config);

// "state.layers.{layer}.{leaf}", or "state.pos" for layer −1.
std::string state_tensor_name(int layer, std::string_view leaf);

}  // namespace longvq
