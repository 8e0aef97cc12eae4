// The CUDA backend (engine/backend_cuda.cpp), present when the build has LONGVQ_HAVE_CUDA.
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"

namespace longvq {

// Usable CUDA devices; 0 with the reason in *why_none when there is none. Never throws.
int cuda_device_count(std::string* why_none);

// A backend on the current device with its own stream; throws when there is no device.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace longvq
