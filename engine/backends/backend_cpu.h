// The CPU device (backends/backend_cpu.cpp): always present.
#pragma once

#include "engine/backends/backend.h"

namespace longvq {

Device& cpu_device();

// The CPU threads a backend made with threads = 0 uses: every core.
int default_cpu_threads();

}  // namespace longvq
