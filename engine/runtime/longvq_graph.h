// Builds the graph of a LongVQ model (design page §2–§5) for one kind of run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/runtime/graph.h"
#include "engine/runtime/model.h"

namespace longvq {

enum class GraphKind {
  sequence,  // whole right-padded sequences, no state: LM logits [B,n,V] or class logits [B,C]
  prefill,   // a causal chunk [B,n] continued from a State, which it updates: logits [B,n,V]
  decode,    // one token per sequence, the decode step: prefill with n = 1
};
const char* graph_kind_name(GraphKind);

struct GraphOptions {
  bool layer_outputs = false;  // keep every layer's output and codes as graph outputs (parity, dumps)
};

// Inputs: "tokens" [B,n] i32 (token embedding) or "inputs" [B,n] f32 (real embedding); for
// kind sequence "lengths" [B] i32; for prefill and decode "state_rows" [B] i32, the State row
// each batch row continues (distinct, in range: the caller checks). Output: "logits". With
// layer_outputs: "layers.{i}.output" [B,n,d] and "layers.{i}.codes" [B,n] i32. State tensors
// are those of state_layout.h, [R, ...] for the State's R rows.
Graph build_graph(const Model& model, GraphKind kind, int64_t max_batch, int64_t max_seq,
                  const GraphOptions& options = {});

// The weights the graph reads that a model file does not hold, computed from those it does
// (`file_weight(name)` gives a file tensor as f32): the EMA coefficients of design page §2.2.
struct DerivedWeight {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};
std::vector<DerivedWeight> derived_weights(const ModelConfig& config,
                                           const std::function<std::vector<float>(const std::string&)>& file_weight);

// Whether the graph reads the file tensor `name` as a linear matrix (WeightUse::linear): what a
// device may prepare in its own layout at load.
bool linear_weight(const ModelConfig& config, const std::string& name);

}  // namespace longvq
