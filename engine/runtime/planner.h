// Static memory planning: every input, output and intermediate of a graph gets a fixed offset in
// one arena, computed once from liveness, so a run (and the decode loop) never allocates.
//
// Liveness is taken in execution order: a tensor lives from the node that writes it (inputs:
// from the start) to the last node that reads it (outputs: to the end). Offsets are chosen
// best-fit from a free list of dead blocks (merged when adjacent), growing the arena only when
// no block fits; an elementwise op writes over an input that dies at that node (in place).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "engine/runtime/graph.h"

namespace longvq {

inline constexpr size_t kArenaAlignment = 64;  // cache line / AVX-512 vector

struct MemoryPlan {
  size_t arena_bytes = 0;  // what the arena must hold
  size_t naive_bytes = 0;  // every input, output and intermediate in its own buffer
  int in_place = 0;        // tensors that reuse their input's memory
  struct Life { int first = 0, last = 0; };
  std::vector<Life> life;  // per tensor id (weights and state: unused)
};

// Sets TensorDesc::offset of every arena tensor (sizes at the graph's maxima).
MemoryPlan plan_memory(Graph& graph);

// Throws std::logic_error naming both tensors if two tensors alive at the same time overlap
// in the arena (tensors sharing memory in place are allowed exactly at the hand-over node).
void check_plan(const Graph& graph, const MemoryPlan& plan);

// Per-tensor offsets and sizes, then totals.
void print_plan(const Graph& graph, const MemoryPlan& plan, std::ostream& out);

}  // namespace longvq
