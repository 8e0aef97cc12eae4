// Counters and histograms for a serving loop, rendered in Prometheus' text format. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace longvq {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds of the buckets, ascending
  void observe(double value);
  // "# TYPE name histogram" and its _bucket / _sum / _count lines.
  std::string prometheus(const std::string& name, const std::string& help) const;
  // The q-quantile (0..1) estimated from the buckets (upper bound of the bucket it falls in).
  double quantile(double q) const;
  int64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<int64_t> counts_;  // bounds_.size() + 1 (the last is +Inf)
  double sum_ = 0;
  int64_t total_ = 0;
};

// Latency buckets from 100 µs to 60 s, in seconds.
std::vector<double> latency_buckets();

}  // namespace longvq
