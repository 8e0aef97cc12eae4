#include "engine/serving/metrics.h"

#include <cstdio>

namespace longvq {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::lock_guard lock(mu_);
  size_t b = 0;
  while (b < bounds_.size() && value > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += value;
  ++total_;
}

int64_t Histogram::count() const {
  std::lock_guard lock(mu_);
  return total_;
}

double Histogram::quantile(double q) const {
  std::lock_guard lock(mu_);
  if (total_ == 0) return 0;
  const double target = q * static_cast<double>(total_);
  int64_t cum = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    cum += counts_[b];
    if (static_cast<double>(cum) >= target) return b < bounds_.size() ? bounds_[b] : bounds_.back();
  }
  return bounds_.back();
}

std::string Histogram::prometheus(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mu_);
  std::string s = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  char line[256];
  int64_t cum = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    cum += counts_[b];
    if (b < bounds_.size()) std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %lld\n", name.c_str(), bounds_[b], static_cast<long long>(cum));
    else std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %lld\n", name.c_str(), static_cast<long long>(cum));
    s += line;
  }
  std::snprintf(line, sizeof line, "%s_sum %.9g\n%s_count %lld\n", name.c_str(), sum_, name.c_str(), static_cast<long long>(total_));
  return s + line;
}

std::vector<double> latency_buckets() {
  return {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace longvq
