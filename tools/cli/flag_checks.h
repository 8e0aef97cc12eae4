// Checks for numeric and path flags whose messages name the value and the allowed range in
// plain numbers ("--temp: 'nan' is not a finite number; give one >= 0"), where CLI11's own
// validators print DBL_MAX in 309 digits or call "abc" out of range. CLI11 prefixes the flag.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

namespace longvq::cli {

// A whole number in [lo, hi] (hi = INT64_MAX reads ">= lo").
CLI::Validator integer_in(int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max());

// A finite number in [lo, hi], or (lo, hi] with lo_open (hi = +infinity reads ">= lo" / "> lo").
CLI::Validator number_in(double lo, double hi = std::numeric_limits<double>::infinity(), bool lo_open = false);

// A value that is not the empty string (an empty -m must not quietly mean the default model);
// `message` says what to give instead.
CLI::Validator not_empty(const std::string& message);

// The largest sizes the engine takes for lengths, chunks, batches and token counts: its per-row
// lengths are int32, and a state holds at most 2^31 − 1 tokens (engine/runtime/state.h).
inline constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
// Thread counts: far more than any machine has, small enough to never be a resource bomb.
inline constexpr int64_t kMaxThreads = 4096;

}  // namespace longvq::cli
