// The CUDA device, present when the build has LONGVQ_HAVE_CUDA. Its code (backend_cuda.cpp and
// kernels/cuda) is a separate module, liblongvq_cuda_backend.so, loaded on first use by
// cuda_module.cpp: a program that only runs on the CPU never loads the CUDA libraries (hundreds
// of MiB of cuBLAS), and starts where they are not installed. LONGVQ_CUDA_MODULE=PATH overrides
// where the module is looked for. The module's entry points take and return C types only.
#pragma once

#include <string>

#include "engine/backends/backend.h"

namespace longvq {

// Usable CUDA devices; 0 with the reason in *why_none when there is none (or the module cannot
// be loaded). Never throws.
int cuda_device_count(std::string* why_none);

// The process's CUDA device; throws std::runtime_error when there is none.
Device& cuda_device();

}  // namespace longvq
