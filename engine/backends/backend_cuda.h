// The CUDA backend, present when the build has LONGVQ_HAVE_CUDA. Its code (backend_cuda.cpp and
// kernels/cuda) is a separate module, liblongvq_cuda_backend.so, loaded on first use by
// cuda_module.cpp: a program that only runs on the CPU never loads the CUDA libraries (hundreds
// of MiB of cuBLAS), and starts where they are not installed. LONGVQ_CUDA_MODULE=PATH overrides
// where the module is looked for.
#pragma once

#include <memory>
#include <string>

#include "engine/backends/backend.h"

namespace longvq {

// Usable CUDA devices; 0 with the reason in *why_none when there is none (or the module cannot
// be loaded). Never throws.
int cuda_device_count(std::string* why_none);

// A backend on the current device with its own stream; throws when there is no device.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace longvq
