// The CPU backend's kernels: multi-threaded (OpenMP) and vectorized, with AVX2/FMA and AVX-512
// paths chosen at run time. Results are deterministic and independent of the thread count: work
// is split into fixed pieces and every sum has a fixed order (no atomics, no thread-dependent
// reductions). Calls must pass check_op_call (engine/ops/op_check.h).
#pragma once

#include "engine/ops/op.h"

namespace longvq {

struct CpuContext {
  int threads = 1;
  // Work (in rough flops) below which an op runs on the calling thread: waking an OpenMP team
  // costs microseconds, more on a shared VM's second vCPU, and a small model's decode step is a
  // chain of ~50 small ops (austen-lm at 2 threads: 7.9k tok/s with 1e5 here, 13.0k with 1e6,
  // 11.5k at 1 thread). Tests set 0 so that every op splits wherever it can.
  double min_parallel_work = 1.0e6;
};

// Runs `call` on the CPU. Stateful ops update their state inputs in place.
void cpu_run(const OpCall& call, const CpuContext& ctx);

// The CPU's private weight layout (TensorRef::layout) for linear's W: panels of 16 outputs,
// [ceil(out/16), in, 16] with zero-padded outputs: rows o = 16p..16p+15 of W, transposed, so a
// kernel that walks `in` reads 16 consecutive outputs per step (one vector). A layout of the
// same values (packing is exact); the CPU device makes it once per weight at load.
inline constexpr uint8_t kCpuLinearPanels = 1;
inline constexpr int64_t kCpuLinearPanel = 16;
size_t cpu_linear_panel_bytes(int64_t out, int64_t in, DType dtype);
void cpu_pack_linear_panels(const TensorRef& W, void* dst);  // W [out, in] f32, bf16 or q8, dense → panels
// A q8 W's panels (cpu_linear_q8.cpp; the two above call these for q8): per panel of 16 outputs,
// blocks of 32 inputs, each 16 f32 scales then 32 × 16 int8 values.
size_t cpu_linear_q8_panel_bytes(int64_t out, int64_t in);
void cpu_pack_linear_q8_panels(const TensorRef& W, void* dst);

// The instruction set the vectorized kernels use: the best this CPU supports, unless lowered by
// cpu_force_isa or the environment variable LONGVQ_CPU_ISA=generic|avx2|avx512 (tests, benchmarks).
enum class CpuIsa { generic, avx2, avx512 };
CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa);
// Uses `isa`, or the best supported one below it; returns what is now in use.
CpuIsa cpu_force_isa(CpuIsa isa);

}  // namespace longvq
