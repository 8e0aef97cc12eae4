// The runtime check of what the engine hands back: a logit that is NaN or infinite (a finite
// but huge weight, e.g. a norm weight of 3e38, overflows float32 mid-network) must be an error,
// not "-nan" bits per byte or NUL bytes of text. The scan is cheap next to computing the
// logits; when it finds one, the tokens are run once more with every layer's output kept to
// name the first layer whose output is not finite (in the kernels there are no such checks).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "engine/runtime/model.h"

namespace longvq::cli {

// Throws a runtime_error (exit 1) when `logits` holds a non-finite value. `tokens` are the
// inputs of the run that produced them (a causal LM, from its context), `what` says where in
// the run they were ("prompt token 7", "generated token 12").
void check_lm_logits(const std::shared_ptr<const Model>& model, std::span<const float> logits,
                     std::span<const int32_t> tokens, const std::string& what);

// The same for a classifier's class logits of one batch: `inputs` are its batch of token ids
// or values ([batch × n]), `lengths` its rows' lengths.
void check_class_logits(const std::shared_ptr<const Model>& model, std::span<const float> logits,
                        std::span<const int32_t> tokens, std::span<const float> values,
                        std::span<const int32_t> lengths, int64_t n, const std::string& what);

}  // namespace longvq::cli
