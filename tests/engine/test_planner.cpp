// The static memory plan of every graph the model builds: no two live tensors overlap, the
// arena is no larger than the naive sum, and a plan is made once and reused.
#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

#include "engine/longvq.h"
#include "engine/runtime/planner.h"

namespace fs = std::filesystem;
using namespace longvq;

TEST_CASE("every graph of every fixture model plans without overlap", "[planner]") {
  for (const auto& entry : fs::directory_iterator(LONGVQ_FIXTURES_DIR)) {
    if (!entry.is_directory()) continue;
    auto model = Model::load(entry.path());
    const bool lm = model->config().task == ModelConfig::Task::lm;
    for (GraphKind kind : {GraphKind::sequence, GraphKind::prefill, GraphKind::decode}) {
      if (!lm && kind != GraphKind::sequence) continue;
      for (bool layer_outputs : {false, true}) {
        Graph g = build_graph(*model, kind, 3, 37, {layer_outputs});
        MemoryPlan plan = plan_memory(g);  // runs check_plan
        INFO(entry.path().filename() << " " << graph_kind_name(kind));
        CHECK_NOTHROW(check_plan(g, plan));
        CHECK(plan.arena_bytes <= plan.naive_bytes);
        CHECK(plan.arena_bytes > 0);
        if (!layer_outputs) CHECK(plan.arena_bytes < plan.naive_bytes);  // reuse must happen
      }
    }
  }
}

TEST_CASE("the overlap checker catches overlapping live tensors", "[planner]") {
  Graph g(1, 4);
  int x = g.add_tensor("x", DType::f32, {kBatch, kSeq, 8}, TensorRole::input);
  int a = g.add(OpKind::add, {}, {x, x}, "a", {kBatch, kSeq, 8}, "a = x + x");
  int b = g.add(OpKind::mul, {}, {a, x}, "b", {kBatch, kSeq, 8}, "b = a ⊙ x");
  g.mark_output(b);
  MemoryPlan plan = plan_memory(g);
  CHECK_NOTHROW(check_plan(g, plan));
  g.tensors()[static_cast<size_t>(a)].offset = g.tensor(x).offset;  // a now sits on x, which is still alive
  CHECK_THROWS_WITH(check_plan(g, plan), Catch::Contains("overlap"));
}

TEST_CASE("the plan prints offsets and totals", "[planner]") {
  auto model = Model::load(fs::path(LONGVQ_FIXTURES_DIR) / "lm_bytes_layernorm_tied");
  Graph g = build_graph(*model, GraphKind::decode, 2, 1);
  MemoryPlan plan = plan_memory(g);
  std::ostringstream out;
  print_plan(g, plan, out);
  CHECK_THAT(out.str(), Catch::Contains("layers.0.o") && Catch::Contains("arena:") && Catch::Contains("own buffer"));
}
