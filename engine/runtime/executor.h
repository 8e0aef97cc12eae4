// Runs a planned graph on a backend: binds every tensor to the arena, the model's weights or
// the caller's State, validates each node once, and runs the nodes in order.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/runtime/graph.h"
#include "engine/runtime/model.h"
#include "engine/runtime/planner.h"

namespace longvq {

class State;

class Executor {
 public:
  // Plans the graph and allocates its arena once; checks every node at the graph's maxima.
  Executor(const Model& model, Backend& backend, Graph graph);

  const Graph& graph() const { return graph_; }
  const MemoryPlan& plan() const { return plan_; }

  // Copies host data into a graph input for a run of `batch` × `seq`.
  void set_input(const std::string& name, const void* host, int64_t batch, int64_t seq);
  // Runs every node for the given sizes (≤ the graph's maxima); state tensors come from `state`
  // (any number of rows: the "state_rows" input says which ones the run steps).
  void run(int64_t batch, int64_t seq, State* state);
  // Copies a graph output (or any arena tensor of the last run) to host memory.
  void get_output(const std::string& name, void* host, int64_t batch, int64_t seq) const;
  size_t output_bytes(const std::string& name, int64_t batch, int64_t seq) const;

 private:
  TensorRef bind(int id, int64_t batch, int64_t seq, State* state) const;
  int arena_tensor(const std::string& name) const;

  const Model& model_;
  Backend& backend_;
  Graph graph_;
  MemoryPlan plan_;
  BackendBuffer arena_;
  std::vector<OpCall> calls_;  // bound for (bound_batch_, bound_seq_, bound_state_); reused while they hold
  int64_t bound_batch_ = 0, bound_seq_ = 0;
  uint64_t bound_state_ = 0;  // State::id()
  uint64_t generation_ = 0;   // changes whenever calls_ is rebound (Backend::run_graph)
};

}  // namespace longvq
