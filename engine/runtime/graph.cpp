#include "engine/runtime/graph.h"

#include <stdexcept>

namespace longvq {

const char* role_name(TensorRole r) {
  switch (r) {
    case TensorRole::weight: return "weight";
    case TensorRole::state: return "state";
    case TensorRole::input: return "input";
    case TensorRole::output: return "output";
    case TensorRole::activation: return "activation";
  }
  return "?";
}

std::vector<int64_t> resolve_shape(const std::vector<int64_t>& shape, int64_t batch, int64_t seq) {
  std::vector<int64_t> out(shape);
  for (int64_t& d : out) {
    if (d == kBatch) d = batch;
    else if (d == kSeq) d = seq;
  }
  return out;
}

size_t tensor_bytes(const TensorDesc& t, int64_t batch, int64_t seq) {
  size_t n = dtype_size(t.dtype);
  for (int64_t d : resolve_shape(t.shape, batch, seq)) n *= static_cast<size_t>(d);
  return n;
}

int Graph::add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, TensorRole role) {
  tensors_.push_back(TensorDesc{std::move(name), dtype, std::move(shape), role, -1});
  return static_cast<int>(tensors_.size()) - 1;
}

int Graph::add_weight(std::string name, DType dtype, std::vector<int64_t> shape, WeightUse use) {
  const int id = add_tensor(std::move(name), dtype, std::move(shape), TensorRole::weight);
  tensors_.back().use = use;
  return id;
}

int Graph::find_weight(const std::string& name, WeightUse use) const {
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].role == TensorRole::weight && tensors_[i].name == name && tensors_[i].use == use)
      return static_cast<int>(i);
  return -1;
}

std::vector<int> Graph::add_node(OpKind op, const OpParams& params, std::vector<int> inputs,
                                 const std::vector<std::pair<std::string, std::vector<int64_t>>>& outputs,
                                 std::string ref, DType out_dtype) {
  for (int id : inputs)
    if (id >= static_cast<int>(tensors_.size()))
      throw std::logic_error(std::string("graph: node ") + op_name(op) + " uses an unknown tensor");
  std::vector<int> out_ids;
  for (const auto& [name, shape] : outputs)
    out_ids.push_back(add_tensor(name, out_dtype, shape, TensorRole::activation));
  nodes_.push_back(Node{op, params, std::move(inputs), out_ids, std::move(ref)});
  return out_ids;
}

int Graph::add(OpKind op, const OpParams& params, std::vector<int> inputs, std::string name,
               std::vector<int64_t> shape, std::string ref, DType out_dtype) {
  return add_node(op, params, std::move(inputs), {{std::move(name), std::move(shape)}}, std::move(ref),
                  out_dtype)[0];
}

void Graph::mark_output(int id) {
  TensorDesc& t = tensors_.at(static_cast<size_t>(id));
  if (t.role != TensorRole::activation)
    throw std::logic_error("graph: only an activation can become an output: " + t.name);
  t.role = TensorRole::output;
}

void Graph::mark_output(int id, const std::string& alias) {
  mark_output(id);
  aliases_.emplace_back(alias, id);
}

int Graph::find(const std::string& name) const {
  for (const auto& [alias, id] : aliases_)
    if (alias == name) return id;
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace longvq
