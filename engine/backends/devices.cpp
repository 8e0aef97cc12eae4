// Which devices this process has: the CPU always, CUDA when the build has it and a GPU is there.
#include <stdexcept>

#include "engine/backends/backend.h"
#include "engine/backends/backend_cpu.h"
#if LONGVQ_HAVE_CUDA
#include "engine/backends/backend_cuda.h"
#endif

namespace longvq {

const char* backend_kind_name(BackendKind kind) { return kind == BackendKind::cuda ? "cuda" : "cpu"; }

bool cuda_backend_available(std::string* why) {
#if LONGVQ_HAVE_CUDA
  std::string reason;
  if (cuda_device_count(&reason) > 0) return true;
  if (why) *why = "no CUDA device: " + reason;
  return false;
#else
  if (why) *why = "this build has no CUDA backend (configure with -DLONGVQ_CUDA=ON where nvcc is installed)";
  return false;
#endif
}

BackendKind default_backend_kind() { return cuda_backend_available() ? BackendKind::cuda : BackendKind::cpu; }

Device& device(BackendKind kind) {
  if (kind == BackendKind::cpu) return cpu_device();
  std::string why;
  if (!cuda_backend_available(&why)) throw std::runtime_error("cannot use the CUDA backend: " + why + "; use the CPU backend");
#if LONGVQ_HAVE_CUDA
  return cuda_device();
#else
  throw std::logic_error("unreachable");
#endif
}

}  // namespace longvq
