// Loads the CUDA backend module (engine/backends/backend_cuda.h) once, on first use.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "engine/backends/backend_cuda.h"
#include "engine/runtime/install_paths.h"

// The build tree's module: the last place looked (an installed program finds its own first).
#ifndef LONGVQ_CUDA_MODULE_PATH
#error "LONGVQ_CUDA_MODULE_PATH must name the built liblongvq_cuda_backend.so"
#endif

namespace longvq {
namespace {

struct Module {
  int (*device_count)(char* why, size_t why_size) = nullptr;
  void* (*device)(char* error, size_t error_size) = nullptr;  // a Device*
  std::string error;  // why it could not be loaded
};

constexpr size_t kMessageBytes = 1024;

const Module& module() {
  static Module m;
  static std::once_flag once;
  std::call_once(once, [] {
    // $LONGVQ_CUDA_MODULE, else the first module found next to this program (the installed
    // layout, engine/runtime/install_paths.h), else the build tree's.
    const char* env = std::getenv("LONGVQ_CUDA_MODULE");
    std::string path = env && *env ? env : "";
    std::string looked;
    if (path.empty()) {
      std::error_code ec;
      for (const std::filesystem::path& c : cuda_module_candidates()) {
        looked += (looked.empty() ? "" : ", ") + c.string();
        if (std::filesystem::is_regular_file(c, ec)) {
          path = c.string();
          break;
        }
      }
      if (path.empty()) path = LONGVQ_CUDA_MODULE_PATH;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: backends may outlive any scope
    if (!handle) {
      const char* why = dlerror();
      m.error = "cannot load the CUDA backend module " + path + " (" + (why ? why : "unknown error") + ")" +
                (env && *env ? std::string(" named by LONGVQ_CUDA_MODULE")
                             : "; also looked in " + (looked.empty() ? std::string("(nowhere)") : looked)) +
                "; rebuild or reinstall longvq, or set LONGVQ_CUDA_MODULE to the module's path";
      return;
    }
    m.device_count = reinterpret_cast<int (*)(char*, size_t)>(dlsym(handle, "longvq_cuda_module_device_count"));
    m.device = reinterpret_cast<void* (*)(char*, size_t)>(dlsym(handle, "longvq_cuda_module_device"));
    if (!m.device_count || !m.device)
      m.error = path + " is not a longvq CUDA backend module of this version (entry points missing); rebuild longvq";
  });
  return m;
}

}  // namespace

int cuda_device_count(std::string* why_none) {
  // Without the NVIDIA driver there is no device to find: say so without loading the module,
  // which maps cuBLAS and cuFFT (over 200 MiB of resident memory) only to learn the same.
  std::error_code ec;
  if (!std::filesystem::exists("/dev/nvidiactl", ec) && !std::filesystem::exists("/proc/driver/nvidia", ec) &&
      !std::filesystem::exists("/dev/dxg", ec)) {  // WSL2's GPU device
    if (why_none) *why_none = "no NVIDIA driver on this machine (no /dev/nvidiactl)";
    return 0;
  }
  const Module& m = module();
  if (!m.error.empty()) {
    if (why_none) *why_none = m.error;
    return 0;
  }
  char why[kMessageBytes] = "";
  const int n = m.device_count(why, sizeof why);
  if (n == 0 && why_none) *why_none = why;
  return n;
}

Device& cuda_device() {
  const Module& m = module();
  if (!m.error.empty()) throw std::runtime_error(m.error);
  char error[kMessageBytes] = "";
  void* device = m.device(error, sizeof error);
  if (!device) throw std::runtime_error(error);
  return *static_cast<Device*>(device);
}

}  // namespace longvq
