// Loads the CUDA backend module (engine/backends/backend_cuda.h) once, on first use.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/backends/backend_cuda.h"

#ifndef LONGVQ_CUDA_MODULE_PATH
#error "LONGVQ_CUDA_MODULE_PATH must name the built liblongvq_cuda_backend.so"
#endif

namespace longvq {
namespace {

struct Module {
  int (*devices)(std::string*) = nullptr;
  Backend* (*make)(std::string*) = nullptr;
  std::string error;  // why it could not be loaded
};

const Module& module() {
  static Module m;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("LONGVQ_CUDA_MODULE");
    const std::string path = env && *env ? env : LONGVQ_CUDA_MODULE_PATH;
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: backends may outlive any scope
    if (!handle) {
      const char* why = dlerror();
      m.error = "cannot load the CUDA backend module " + path + " (" + (why ? why : "unknown error") +
                "); rebuild longvq, or set LONGVQ_CUDA_MODULE to the module's path";
      return;
    }
    m.devices = reinterpret_cast<int (*)(std::string*)>(dlsym(handle, "longvq_cuda_module_devices"));
    m.make = reinterpret_cast<Backend* (*)(std::string*)>(dlsym(handle, "longvq_cuda_module_make_backend"));
    if (!m.devices || !m.make) m.error = path + " is not a longvq CUDA backend module (entry points missing)";
  });
  return m;
}

}  // namespace

int cuda_device_count(std::string* why_none) {
  const Module& m = module();
  if (!m.error.empty()) {
    if (why_none) *why_none = m.error;
    return 0;
  }
  return m.devices(why_none);
}

std::unique_ptr<Backend> make_cuda_backend() {
  const Module& m = module();
  if (!m.error.empty()) throw std::runtime_error(m.error);
  std::string error;
  Backend* be = m.make(&error);
  if (!be) throw std::runtime_error(error);
  return std::unique_ptr<Backend>(be);
}

}  // namespace longvq
