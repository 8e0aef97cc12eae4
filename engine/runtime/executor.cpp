#include "engine/runtime/executor.h"

#include <atomic>
#include <stdexcept>

#include "engine/ops/op_check.h"
#include "engine/runtime/state.h"

namespace longvq {
namespace {

// Unique across the process, so a backend may key recorded graphs by it whatever executor ran.
uint64_t next_generation() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

}  // namespace

Executor::Executor(const Model& model, Backend& backend, Graph graph)
    : model_(model), backend_(backend), graph_(std::move(graph)), plan_(plan_memory(graph_)),
      arena_(backend, plan_.arena_bytes) {
  // Validate every call once, at the maxima, with the real offsets and weight shapes (a scratch
  // State stands in for the caller's).
  std::unique_ptr<State> scratch;
  bool stateful = false;
  for (const TensorDesc& t : graph_.tensors()) stateful = stateful || t.role == TensorRole::state;
  if (stateful) scratch = std::make_unique<State>(model_, backend_, graph_.max_batch());
  OpCall call;
  for (const Node& node : graph_.nodes()) {
    call = OpCall{node.op, node.params, {}, {}};
    for (int id : node.inputs) call.inputs.push_back(bind(id, graph_.max_batch(), graph_.max_seq(), scratch.get()));
    for (int id : node.outputs) call.outputs.push_back(bind(id, graph_.max_batch(), graph_.max_seq(), scratch.get()));
    try {
      check_op_call(call);
    } catch (const std::invalid_argument& err) {
      throw std::logic_error("graph node " + describe_op(node.op, node.params) + " '" + node.ref + "': " + err.what());
    }
    if (std::string why = backend_.unsupported_reason(call); !why.empty())
      throw std::runtime_error("the " + backend_.name() + " backend cannot run this model: " + why);
  }
}

TensorRef Executor::bind(int id, int64_t batch, int64_t seq, State* state) const {
  if (id < 0) return {};
  const TensorDesc& t = graph_.tensor(id);
  switch (t.role) {
    case TensorRole::weight: return model_.weight(t.name, t.use);
    case TensorRole::state:
      if (!state) throw std::logic_error("graph needs a State for " + t.name);
      return state->tensor(t.name);
    default:
      return TensorRef{static_cast<char*>(arena_.data()) + t.offset, t.dtype, resolve_shape(t.shape, batch, seq)};
  }
}

int Executor::arena_tensor(const std::string& name) const {
  int id = graph_.find(name);
  if (id < 0 || graph_.tensor(id).offset < 0) throw std::logic_error("graph has no arena tensor '" + name + "'");
  return id;
}

void Executor::set_input(const std::string& name, const void* host, int64_t batch, int64_t seq) {
  TensorRef ref = bind(arena_tensor(name), batch, seq, nullptr);
  backend_.upload(ref.data, host, ref.nbytes());
}

void Executor::run(int64_t batch, int64_t seq, State* state) {
  if (batch < 1 || batch > graph_.max_batch() || seq < 1 || seq > graph_.max_seq())
    throw std::invalid_argument("run of " + std::to_string(batch) + " × " + std::to_string(seq) +
                                " exceeds the planned " + std::to_string(graph_.max_batch()) + " × " +
                                std::to_string(graph_.max_seq()));
  // The bound calls depend only on (batch, seq, the state's memory): a decode loop rebinds nothing.
  const uint64_t state_id = state ? state->id() : 0;
  if (!calls_.empty() && batch == bound_batch_ && seq == bound_seq_ && state_id == bound_state_) {
    backend_.run_graph(calls_, generation_);
    backend_.synchronize();
    return;
  }
  bound_batch_ = batch, bound_seq_ = seq, bound_state_ = state_id;
  generation_ = next_generation();
  calls_.resize(graph_.nodes().size());
  for (size_t i = 0; i < calls_.size(); ++i) {
    const Node& node = graph_.nodes()[i];
    OpCall& call = calls_[i];
    call.op = node.op;
    call.params = node.params;
    call.inputs.clear();
    call.outputs.clear();
    for (int id : node.inputs) call.inputs.push_back(bind(id, batch, seq, state));
    for (int id : node.outputs) call.outputs.push_back(bind(id, batch, seq, state));
  }
  backend_.run_graph(calls_, generation_);
  backend_.synchronize();
}

size_t Executor::output_bytes(const std::string& name, int64_t batch, int64_t seq) const {
  return tensor_bytes(graph_.tensor(arena_tensor(name)), batch, seq);
}

void Executor::get_output(const std::string& name, void* host, int64_t batch, int64_t seq) const {
  TensorRef ref = bind(arena_tensor(name), batch, seq, nullptr);
  backend_.download(host, ref.data, ref.nbytes());
}

}  // namespace longvq
