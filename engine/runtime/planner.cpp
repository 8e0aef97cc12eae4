#include "engine/runtime/planner.h"

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace longvq {
namespace {

bool in_arena(const TensorDesc& t) {
  return t.role == TensorRole::input || t.role == TensorRole::output || t.role == TensorRole::activation;
}

size_t aligned(size_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

size_t planned_bytes(const Graph& g, const TensorDesc& t) {
  return aligned(tensor_bytes(t, g.max_batch(), g.max_seq()));
}

// Free blocks of the arena, kept sorted by offset and merged when adjacent.
class FreeList {
 public:
  size_t take(size_t size, size_t& arena_end) {
    auto best = blocks_.end();
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
      if (it->size >= size && (best == blocks_.end() || it->size < best->size)) best = it;
    if (best == blocks_.end()) {
      // Grow the arena; a free block touching the end can be part of the new tensor.
      if (!blocks_.empty() && blocks_.back().offset + blocks_.back().size == arena_end) {
        size_t offset = blocks_.back().offset;
        blocks_.pop_back();
        arena_end = offset + size;
        return offset;
      }
      size_t offset = arena_end;
      arena_end += size;
      return offset;
    }
    size_t offset = best->offset;
    best->offset += size;
    best->size -= size;
    if (best->size == 0) blocks_.erase(best);
    return offset;
  }

  void give_back(size_t offset, size_t size) {
    auto it = std::lower_bound(blocks_.begin(), blocks_.end(), offset,
                               [](const Block& b, size_t o) { return b.offset < o; });
    it = blocks_.insert(it, Block{offset, size});
    if (it + 1 != blocks_.end() && it->offset + it->size == (it + 1)->offset) {
      it->size += (it + 1)->size;
      blocks_.erase(it + 1);
    }
    if (it != blocks_.begin() && (it - 1)->offset + (it - 1)->size == it->offset) {
      (it - 1)->size += it->size;
      blocks_.erase(it);
    }
  }

 private:
  struct Block { size_t offset, size; };
  std::vector<Block> blocks_;
};

}  // namespace

MemoryPlan plan_memory(Graph& graph) {
  auto& tensors = graph.tensors();
  const auto& nodes = graph.nodes();
  const int end = static_cast<int>(nodes.size());
  MemoryPlan plan;
  plan.life.assign(tensors.size(), MemoryPlan::Life{-1, -1});
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!in_arena(tensors[i])) continue;
    plan.life[i] = {-1, tensors[i].role == TensorRole::output ? end : -1};
    plan.naive_bytes += planned_bytes(graph, tensors[i]);
  }
  for (int n = 0; n < end; ++n) {
    for (int id : nodes[n].outputs) plan.life[id].first = n;
    for (int id : nodes[n].inputs)
      if (id >= 0 && in_arena(tensors[id])) plan.life[id].last = std::max(plan.life[id].last, n);
  }
  for (size_t i = 0; i < tensors.size(); ++i)  // written but never read: dies where it is born
    if (in_arena(tensors[i]) && plan.life[i].last < plan.life[i].first) plan.life[i].last = plan.life[i].first;

  FreeList free_list;
  size_t arena_end = 0;
  std::vector<bool> handed_over(tensors.size(), false);  // memory passed on to an in-place output
  for (size_t i = 0; i < tensors.size(); ++i)  // inputs are alive before the first node
    if (tensors[i].role == TensorRole::input)
      tensors[i].offset = static_cast<int64_t>(free_list.take(planned_bytes(graph, tensors[i]), arena_end));
  for (int n = 0; n < end; ++n) {
    const Node& node = nodes[n];
    for (int out : node.outputs) {
      size_t size = planned_bytes(graph, tensors[out]);
      bool placed = false;
      for (size_t k = 0; k < node.inputs.size() && !placed; ++k) {
        int in = node.inputs[k];
        if (in < 0 || tensors[in].role != TensorRole::activation || handed_over[in]) continue;
        if (!op_allows_in_place(node.op, static_cast<int>(k)) || plan.life[in].last != n) continue;
        if (planned_bytes(graph, tensors[in]) != size) continue;
        tensors[out].offset = tensors[in].offset;
        handed_over[in] = true;
        ++plan.in_place;
        placed = true;
      }
      if (!placed) tensors[out].offset = static_cast<int64_t>(free_list.take(size, arena_end));
    }
    std::vector<int> dying;
    for (int id : node.inputs)
      if (id >= 0 && in_arena(tensors[id]) && plan.life[id].last == n) dying.push_back(id);
    for (int id : node.outputs)
      if (plan.life[id].last == n) dying.push_back(id);
    std::sort(dying.begin(), dying.end());
    dying.erase(std::unique(dying.begin(), dying.end()), dying.end());
    for (int id : dying)
      if (!handed_over[id] && tensors[id].role != TensorRole::output)
        free_list.give_back(static_cast<size_t>(tensors[id].offset), planned_bytes(graph, tensors[id]));
  }
  plan.arena_bytes = arena_end;
  check_plan(graph, plan);
  return plan;
}

void check_plan(const Graph& graph, const MemoryPlan& plan) {
  const auto& tensors = graph.tensors();
  struct Item { int id; size_t begin, end; int first, last; };
  std::vector<Item> items;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!in_arena(tensors[i])) continue;
    if (tensors[i].offset < 0) throw std::logic_error("plan: tensor " + tensors[i].name + " has no offset");
    size_t b = static_cast<size_t>(tensors[i].offset);
    items.push_back({static_cast<int>(i), b, b + planned_bytes(graph, tensors[i]), plan.life[i].first,
                     plan.life[i].last});
    if (items.back().end > plan.arena_bytes)
      throw std::logic_error("plan: tensor " + tensors[i].name + " ends past the arena");
  }
  // An output written in place over an input that dies at the same node shares its memory there.
  auto in_place_pair = [&](const Item& a, const Item& b) {
    if (a.last != b.first || a.begin != b.begin) return false;
    const Node& node = graph.nodes().at(static_cast<size_t>(b.first));
    for (size_t k = 0; k < node.inputs.size(); ++k)
      if (node.inputs[k] == a.id && op_allows_in_place(node.op, static_cast<int>(k))) return true;
    return false;
  };
  for (size_t x = 0; x < items.size(); ++x)
    for (size_t y = x + 1; y < items.size(); ++y) {
      const Item& a = items[x];
      const Item& b = items[y];
      bool same_time = a.first <= b.last && b.first <= a.last;
      bool same_bytes = a.begin < b.end && b.begin < a.end;
      if (same_time && same_bytes && !in_place_pair(a, b) && !in_place_pair(b, a))
        throw std::logic_error("plan: tensors " + tensors[a.id].name + " and " + tensors[b.id].name +
                               " are alive together but overlap in the arena");
    }
}

void print_plan(const Graph& graph, const MemoryPlan& plan, std::ostream& out) {
  auto shape_text = [](const std::vector<int64_t>& shape) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
    return s.str() + ']';
  };
  out << std::left << std::setw(36) << "tensor" << std::setw(11) << "role" << std::setw(18) << "shape (max)"
      << std::right << std::setw(12) << "offset" << std::setw(12) << "bytes" << "  live\n";
  const auto& tensors = graph.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorDesc& t = tensors[i];
    if (!in_arena(t)) continue;
    out << std::left << std::setw(36) << t.name << std::setw(11) << role_name(t.role) << std::setw(18)
        << shape_text(resolve_shape(t.shape, graph.max_batch(), graph.max_seq())) << std::right << std::setw(12)
        << t.offset << std::setw(12) << planned_bytes(graph, t) << "  " << plan.life[i].first << ".."
        << plan.life[i].last << "\n";
  }
  out << "arena: " << plan.arena_bytes << " bytes for " << graph.nodes().size() << " nodes (every tensor in its "
      << "own buffer: " << plan.naive_bytes << " bytes; " << plan.in_place << " in place)\n";
}

}  // namespace longvq
