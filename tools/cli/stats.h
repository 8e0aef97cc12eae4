// Mean and sample standard deviation of repeated measurements (bench), and a monotonic clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace longvq::cli {

double mean(const std::vector<double>& xs);
// Sample standard deviation (n − 1); 0 for fewer than two values.
double stddev(const std::vector<double>& xs);

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace longvq::cli
