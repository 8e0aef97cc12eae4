// Builds the graph of a LongVQ model (design page §2–§5) for one kind of run.
#pragma once

#include <cstdint>

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

// Inputs: "tokens" [B,n] i32 (token embedding) or "inputs" [B,n] f32 (real embedding), and for
// kind sequence "lengths" [B] i32. Output: "logits". With layer_outputs: "layers.{i}.output"
// [B,n,d] and "layers.{i}.codes" [B,n] i32. State tensors are named as in the state file
// ("state.pos", "state.layers.{i}.ema", ...).
Graph build_graph(const Model& model, GraphKind kind, int64_t max_batch, int64_t max_seq,
                  const GraphOptions& options = {});

}  // namespace longvq
