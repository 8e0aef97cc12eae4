// A graph of ops over tensors, built once per (kind, max batch, max length) and planned once.
//
// Shapes may name the run's batch size B and sequence length n symbolically (kBatch, kSeq), so
// one planned graph serves every run up to its maxima: the planner sizes buffers for the maxima,
// a run resolves shapes with its actual B and n and packs data densely at the start of each
// buffer. State tensors lead with kRows, the rows of the caller's State (any number: a run steps
// B of them, chosen by its state_rows input).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/ops/op.h"

namespace longvq {

inline constexpr int64_t kBatch = -1;  // B of the run
inline constexpr int64_t kSeq = -2;    // n of the run
inline constexpr int64_t kRows = -3;   // R, the rows of the State (state tensors only)

enum class TensorRole : uint8_t {
  weight,      // model parameter, lives in the model's buffers
  state,       // per-sequence decoding state, lives in the caller's State
  input,       // written by the caller before a run (arena)
  output,      // read by the caller after a run (arena, never reused)
  activation,  // intermediate (arena, reused once dead)
};
const char* role_name(TensorRole);

struct TensorDesc {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  // entries ≥ 0, or kBatch / kSeq / kRows
  TensorRole role = TensorRole::activation;
  int64_t offset = -1;         // arena offset (input / output / activation), set by the planner
  WeightUse use = WeightUse::dense;  // weights: which form of the model's weight the reading op takes
};

std::vector<int64_t> resolve_shape(const std::vector<int64_t>& shape, int64_t batch, int64_t seq);
size_t tensor_bytes(const TensorDesc& t, int64_t batch, int64_t seq);

struct Node {
  OpKind op;
  OpParams params;
  std::vector<int> inputs;   // tensor ids; -1 = optional input absent
  std::vector<int> outputs;  // tensor ids
  std::string ref;           // the reference line this node implements (for dumps and errors)
};

class Graph {
 public:
  Graph(int64_t max_batch, int64_t max_seq) : max_batch_(max_batch), max_seq_(max_seq) {}

  int add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, TensorRole role);
  int add_weight(std::string name, DType dtype, std::vector<int64_t> shape, WeightUse use);
  int find_weight(const std::string& name, WeightUse use) const;  // -1 when absent
  // Appends a node whose outputs are new activations of the given shapes; returns their ids.
  std::vector<int> add_node(OpKind op, const OpParams& params, std::vector<int> inputs,
                            const std::vector<std::pair<std::string, std::vector<int64_t>>>& outputs,
                            std::string ref, DType out_dtype = DType::f32);
  // Single-output convenience.
  int add(OpKind op, const OpParams& params, std::vector<int> inputs, std::string name,
          std::vector<int64_t> shape, std::string ref, DType out_dtype = DType::f32);
  void mark_output(int id);
  // Marks `id` as an output that find() also knows as `alias` (e.g. "layers.0.output").
  void mark_output(int id, const std::string& alias);

  const std::vector<TensorDesc>& tensors() const { return tensors_; }
  std::vector<TensorDesc>& tensors() { return tensors_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const TensorDesc& tensor(int id) const { return tensors_.at(static_cast<size_t>(id)); }
  int find(const std::string& name) const;  // -1 when absent
  int64_t max_batch() const { return max_batch_; }
  int64_t max_seq() const { return max_seq_; }

 private:
  int64_t max_batch_, max_seq_;
  std::vector<TensorDesc> tensors_;
  std::vector<Node> nodes_;
  std::vector<std::pair<std::string, int>> aliases_;
};

}  // namespace longvq
