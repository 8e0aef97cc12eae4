#include "engine/runtime/version.h"

#ifndef LONGVQ_HAVE_CUDA
#error "LONGVQ_HAVE_CUDA must be defined (0 or 1) by the build system"
#endif

namespace longvq {

std::string_view version() { return LONGVQ_VERSION; }

std::string build_info() {
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = "gcc " __VERSION__;
#else
  const std::string compiler = "unknown compiler";
#endif
  return "longvq " + std::string(version()) + " (" + compiler + ", C++ " +
         std::to_string(__cplusplus) + ", cuda=" + (LONGVQ_HAVE_CUDA ? "on" : "off") + ")";
}

}  // namespace longvq
