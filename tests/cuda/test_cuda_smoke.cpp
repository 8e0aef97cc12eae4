// Checks the placeholder CUDA backend against CPU references. Exits 77 (ctest:
// Skipped) without a GPU, 0 when every check passes, 1 otherwise.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <exception>
#include <numbers>
#include <string>
#include <vector>

#include "tests/cuda/cuda_smoke.h"

namespace {

bool report(const char* name, double max_err, double tol) {
  const bool ok = max_err <= tol;
  std::printf("%-14s max abs error %.3g (tolerance %.1g) %s\n", name, max_err, tol,
              ok ? "ok" : "FAIL");
  return ok;
}

// Deterministic inputs in [-4, 4): no RNG so failures reproduce exactly.
std::vector<float> ramp(int n, int salt) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = float((i * 37 + salt * 11) % 97) / 97.0f * 8.0f - 4.0f;
  return v;
}

bool check_silu() {
  const auto x = ramp(1000, 1);  // not a multiple of the block size: exercises the tail
  const auto y = longvq_cuda_silu(x);
  double err = y.size() == x.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i)
    err = std::max(err, std::abs(double(y[i]) - x[i] / (1.0 + std::exp(-double(x[i])))));
  return report("silu", err, 1e-5);  // kernel uses expf (not __expf): a few ulp at |y| <= 4
}

bool check_sgemv() {
  const int rows = 37, cols = 53;
  const auto a = ramp(rows * cols, 2), x = ramp(cols, 3);
  const auto y = longvq_cuda_sgemv(a, rows, cols, x);
  double err = y.size() == size_t(rows) ? 0.0 : INFINITY;
  for (int r = 0; r < std::min<int>(rows, y.size()); ++r) {
    double ref = 0;
    for (int c = 0; c < cols; ++c) ref += double(a[r * cols + c]) * x[c];
    err = std::max(err, std::abs(y[r] - ref));
  }
  // fp32 worst case for 53 products of |16|: 53 * 2^-24 * 848 ~ 3e-3
  return report("cublas sgemv", err, 5e-3);
}

bool check_fft() {
  const int n = 256;
  const auto x = ramp(n, 4);
  const auto out = longvq_cuda_fft_round_trip(x);
  double spec_err = out.spectrum.size() == size_t(n / 2 + 1) ? 0.0 : INFINITY;
  for (int k = 0; k < std::min<int>(n / 2 + 1, out.spectrum.size()); ++k) {
    std::complex<double> ref = 0;  // direct DFT, O(n^2) is fine at this size
    for (int t = 0; t < n; ++t)
      ref += double(x[t]) * std::polar(1.0, -2.0 * std::numbers::pi * k * t / n);
    spec_err = std::max(spec_err, std::abs(std::complex<double>(out.spectrum[k]) - ref));
  }
  double trip_err = out.round_trip.size() == x.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(x.size(), out.round_trip.size()); ++i)
    trip_err = std::max(trip_err, std::abs(double(out.round_trip[i]) - x[i]));
  // Bins reach n * 4 ~ 1e3, so 2e-3 is ~2e-6 relative; the round trip is O(1).
  const bool spec_ok = report("cufft r2c", spec_err, 2e-3);
  return report("cufft c2r", trip_err, 1e-4) && spec_ok;
}

}  // namespace

int main() {
  std::string why;
  const int devices = longvq_cuda_device_count(&why);
  if (devices == 0) {
    std::printf("SKIPPED: no CUDA device (%s) — CUDA tests need a GPU\n", why.c_str());
    return 77;
  }
  std::printf("%d CUDA device(s)\n", devices);
  try {
    const bool silu_ok = check_silu();
    const bool gemv_ok = check_sgemv();
    const bool fft_ok = check_fft();
    return silu_ok && gemv_ok && fft_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
