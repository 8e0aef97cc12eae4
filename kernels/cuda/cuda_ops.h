// The CUDA backend's kernels (one op per .cu file), behind one entry point like kernels/cpu.
//
// Plain C++: the CUDA handles are opaque here, so engine code includes this without CUDA
// headers. Every kernel runs on ctx.stream, accumulates in fp32 (vq_codes in fp64, to give the
// exact codes of ref_vq_code), and reads data-dependent values (token ids, codes, positions,
// lengths) on the device only, so a recorded CUDA graph replays correctly. A value a kernel
// would index with that is out of range is skipped and reported through ctx.error_flags (bits
// of CudaError); the backend turns them into an engine error after the stream synchronizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/ops/op.h"

namespace longvq {

struct CudaContext {
  void* stream = nullptr;           // cudaStream_t
  void* cublas = nullptr;           // cublasHandle_t, bound to stream
  void* scratch = nullptr;          // device memory of at least cuda_scratch_bytes(call)
  uint32_t* error_flags = nullptr;  // device word, bits of CudaError
};

enum CudaError : uint32_t {
  kCudaErrTokenRange = 1u << 0,   // embed_tokens: id outside [0, V)
  kCudaErrCodeRange = 1u << 1,    // vq_attention: code outside [0, S)
  kCudaErrRingCode = 1u << 2,     // vq_attention: ring code outside [-1, S)
  kCudaErrPosition = 1u << 3,     // vq_attention: pos < 0
};
// What the set bits mean, for the error message ("" when none).
std::string cuda_error_flags_message(uint32_t flags);

// Device scratch memory `call` needs (0 for most ops).
size_t cuda_scratch_bytes(const OpCall& call);

// Enqueues `call` on ctx.stream (asynchronous). Throws std::runtime_error when a launch or a
// cuBLAS call fails. Stateful ops update their state inputs in place.
void cuda_run(const OpCall& call, const CudaContext& ctx);

// Why the CUDA kernels cannot run `call` ("" when they can): limits of shared memory per block.
std::string cuda_unsupported_reason(const OpCall& call);

}  // namespace longvq
