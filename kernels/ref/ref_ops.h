// Reference kernels: one plain scalar loop nest per op, written for obviousness, not speed.
//
// Each statement carries the line of the design page (../shared/design/longvq-model.md) or of the
// Python reference (tools/longvq_ref) it implements. Sums accumulate in double; results are
// rounded to fp32 only when stored. The op test (tests/ops) holds every fast backend to these.
// Calls must pass check_op_call (engine/ops/op_check.h); the kernels do not re-validate shapes.
#pragma once

#include "engine/ops/op.h"

namespace longvq {

// Runs `call` with the reference kernel of its op. Stateful ops update their state inputs.
void ref_run(const OpCall& call);

// The code of one key, exactly as every backend must compute it (identical codes everywhere):
// argmin_s (||C_s||² − 2·k·C_s), both sums in double in index order i = 0..e−1 (products of two
// floats are exact in double, so fused multiply-add cannot change them), ties → lowest s.
int ref_vq_code(const float* k, const float* codebook, int64_t S, int64_t e);

namespace ref {
void embed_tokens(const OpCall&);
void embed_real(const OpCall&);
void norm(const OpCall&);
void linear(const OpCall&);
void ema(const OpCall&);
void mix_gates(const OpCall&);
void vq_codes(const OpCall&);
void vq_attention(const OpCall&);
void mul(const OpCall&);
void add(const OpCall&);
void gated_residual(const OpCall&);
void mean_pool(const OpCall&);
}  // namespace ref

}  // namespace longvq
