// Validation of an OpCall against the contract of engine/ops/op.h: arity, dtypes, shapes, optional
// inputs present exactly when the params say so, and outputs that do not overlap inputs (except
// the in-place pairs op_allows_in_place names). Kernels (kernels/ref, kernels/cpu) assume a
// checked call; the engine checks each node once when it builds or plans a graph.
#pragma once

#include "engine/ops/op.h"

namespace longvq {

// Throws std::invalid_argument with a message naming the op, the tensor (input/output index and
// role), and what was expected vs found, e.g.
//   "vq_attention: input 2 (v): expected shape [2, 7, 5] = [B, n, h], found [2, 7, 6]".
void check_op_call(const OpCall& call);

// Whether an optional tensor is given: data != nullptr, or it has a shape with zero elements
// (a zero-size buffer may have no memory, e.g. the ring of a W = 0 model). A default TensorRef
// (no data, no shape) is absent.
bool tensor_present(const TensorRef& t);

}  // namespace longvq
