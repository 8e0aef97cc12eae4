// Validation of an OpCall against the contract of engine/ops/op.h: arity, dtypes, shapes, optional
// inputs present exactly when the params say so, layouts (only the slots a descriptor allows may
// hold a backend's private layout), and outputs that do not overlap inputs (except the in-place
// pairs of the descriptor). Kernels assume a checked call; the engine checks each node once when
// it plans a graph. Values are not read (they may live in device memory): whoever fills an index
// tensor (token ids, state_rows) range-checks it.
#pragma once

#include "engine/ops/op.h"

namespace longvq {

// Throws std::invalid_argument with a message naming the op, the tensor (input/output index and
// role), and what was expected vs found, e.g.
//   "vq_attention: input 2 (v): expected shape [2, 7, 5] = [B, n, h], found [2, 7, 6]".
void check_op_call(const OpCall& call);

}  // namespace longvq
