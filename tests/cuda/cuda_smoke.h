#pragma once
// Host entry points of the placeholder CUDA backend. Plain C++: no CUDA headers, so
// any target can include this. Everything except longvq_cuda_device_count throws
// std::runtime_error (naming the failing call) on any CUDA, cuBLAS or cuFFT error.

#include <complex>
#include <string>
#include <vector>

// Number of usable CUDA devices. Returns 0 and, if why_none is non-null, stores a
// human-readable reason when there is no device or driver. Never throws.
int longvq_cuda_device_count(std::string* why_none);

// Elementwise SiLU, x * sigmoid(x), computed by a custom kernel on device 0.
std::vector<float> longvq_cuda_silu(const std::vector<float>& x);

// y = A x with cuBLAS sgemv; a is row-major rows x cols, x has cols entries.
std::vector<float> longvq_cuda_sgemv(const std::vector<float>& a, int rows, int cols,
                                     const std::vector<float>& x);

struct longvq_cuda_fft_result {
  std::vector<std::complex<float>> spectrum;  // R2C output, x.size() / 2 + 1 bins
  std::vector<float> round_trip;              // C2R of spectrum, divided by x.size()
};

// Real FFT of x and back with cuFFT; round_trip should reproduce x.
longvq_cuda_fft_result longvq_cuda_fft_round_trip(const std::vector<float>& x);
