// The CPU backend's kernels: multi-threaded (OpenMP) and vectorized, with AVX2/FMA and AVX-512
// paths chosen at run time. Results are deterministic and independent of the thread count: work
// is split into fixed pieces and every sum has a fixed order (no atomics, no thread-dependent
// reductions). Calls must pass check_op_call (engine/op_check.h).
#pragma once

#include "engine/op.h"

namespace longvq {

struct CpuContext {
  int threads = 1;
};

// Runs `call` on the CPU. Stateful ops update their state inputs in place.
void cpu_run(const OpCall& call, const CpuContext& ctx);

// The instruction set the vectorized kernels use: the best this CPU supports, unless lowered by
// cpu_force_isa or the environment variable LONGVQ_CPU_ISA=generic|avx2|avx512 (tests, benchmarks).
enum class CpuIsa { generic, avx2, avx512 };
CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa);
// Uses `isa`, or the best supported one below it; returns what is now in use.
CpuIsa cpu_force_isa(CpuIsa isa);

}  // namespace longvq
