// The CUDA backend's kernels (one op per .cu file), behind one entry point like kernels/cpu.
//
// Plain C++: the CUDA handles are opaque here, so engine code includes this without CUDA
// headers. Every kernel runs on ctx.stream, accumulates in fp32 (vq_codes in fp64, to give the
// exact codes of ref_vq_code), and reads data-dependent values (token ids, codes, positions,
// lengths) on the device only, so a recorded CUDA graph replays correctly. A value a kernel
// would index with that is out of range is skipped and reported through ctx.error_flags (bits
// of CudaError); the backend turns them into an engine error after the stream synchronizes.
// Every kernel is deterministic: the same call gives the same bits, run after run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/ops/op.h"

namespace longvq {

// The shortest whole (non-stateful) sequence whose EMA the CUDA backend computes in the FFT form
// (cuFFT convolution, as MEGA's parallel forward) instead of the chunked scan. A guess until
// tools/gpu_check.sh has measured the crossover on a GPU (test_ops "[.perf]" prints it per
// shape): the scan's work grows as n·N, the FFT's as n·log n plus the kernel's n·N, and the scan
// is short of parallel work when B·d is small and n long.
constexpr int64_t kEmaFftMinLength = 2048;

// Choices a backend reads from its environment when it is made (cuda_options_from_env).
struct CudaOptions {
  // LONGVQ_CUDA_EMA_FFT = auto (default: kEmaFftMinLength) | always | never | a length.
  int64_t ema_fft_min_length = kEmaFftMinLength;
  // LONGVQ_CUDA_LINEAR = cublas (default) | fixed: linear with one fixed reduction order per
  // output, the same for any number of rows (a row decoded alone == the same row in a prefill,
  // bit for bit), instead of cuBLAS's shape-dependent kernels.
  bool linear_fixed_order = false;
};
// The options the environment asks for; throws std::invalid_argument naming a bad value.
CudaOptions cuda_options_from_env();

// The cuFFT plans of one backend (ema's FFT form), keyed by transform size; opaque here.
struct CudaFftPlans;
CudaFftPlans* cuda_fft_plans_create();
void cuda_fft_plans_destroy(CudaFftPlans* plans);  // after every graph that used them is destroyed

struct CudaContext {
  void* stream = nullptr;           // cudaStream_t
  void* cublas = nullptr;           // cublasHandle_t, bound to stream
  void* scratch = nullptr;          // device memory of at least cuda_prepare(call) bytes
  uint32_t* error_flags = nullptr;  // device word, bits of CudaError
  CudaFftPlans* fft = nullptr;      // the backend's plan cache (null: the EMA never uses FFT)
  CudaOptions options;
};

enum CudaError : uint32_t {
  kCudaErrTokenRange = 1u << 0,   // embed_tokens: id outside [0, V)
  kCudaErrCodeRange = 1u << 1,    // vq_attention: code outside [0, S)
  kCudaErrRingCode = 1u << 2,     // vq_attention: ring code outside [-1, S)
  kCudaErrPosition = 1u << 3,     // vq_attention: pos < 0
};
// What the set bits mean, for the error message ("" when none).
std::string cuda_error_flags_message(uint32_t flags);

// Does what `call` needs done outside a CUDA graph capture, and returns the device scratch
// bytes it needs (0 for most ops). The backend calls it for every call before running or
// capturing it: ema's FFT form makes its cuFFT plans here (plan creation allocates memory and
// cannot be captured), vq_attention opts in to the device's shared memory. ctx.scratch is not
// used. Throws std::runtime_error when cuFFT or the runtime fails.
size_t cuda_prepare(const OpCall& call, const CudaContext& ctx);

// Enqueues `call` on ctx.stream (asynchronous). Throws std::runtime_error when a launch, a cuBLAS
// or a cuFFT call fails. Stateful ops update their state inputs in place. Capturable (CUDA
// graphs) once cuda_prepare(call) ran and ctx.scratch holds the bytes it returned.
void cuda_run(const OpCall& call, const CudaContext& ctx);

// Why the CUDA kernels cannot run `call` ("" when they can): bf16 or q8_0 weights, or more shared memory
// per block than the device allows.
std::string cuda_unsupported_reason(const OpCall& call);

}  // namespace longvq
