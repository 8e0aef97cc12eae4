#include "engine/runtime/install_paths.h"

#include <dlfcn.h>
#include <link.h>

#include <system_error>

// The install layout, relative to the prefix (GNUInstallDirs' values; tools/cmake/install.cmake).
#ifndef LONGVQ_INSTALL_DATADIR
#define LONGVQ_INSTALL_DATADIR "share"
#endif
#ifndef LONGVQ_INSTALL_LIBDIR
#define LONGVQ_INSTALL_LIBDIR "lib"
#endif

// Defined (weak) by programs built against an installed longvq through find_package(longvq): the
// package's prefix (tools/cmake/longvq_package_prefix.cpp). Null in every other program.
extern "C" const char* longvq_package_prefix() __attribute__((weak));

namespace longvq {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCudaModuleFile = "liblongvq_cuda_backend.so";
constexpr int kAncestors = 4;  // D/.. up to D/../../../..

fs::path canonical_or_empty(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? fs::path() : c;
}

// `sub` under D/.., then D itself, then D/../.. … up to kAncestors levels, then the package prefix.
std::vector<fs::path> candidates(const fs::path& sub) {
  std::vector<fs::path> out;
  const fs::path self = self_binary_path();
  if (!self.empty()) {
    const fs::path dir = self.parent_path();
    out.push_back((dir / ".." / sub).lexically_normal());
    out.push_back(dir.lexically_normal());
    fs::path up = dir / "..";
    for (int i = 2; i <= kAncestors; ++i) {
      up /= "..";
      out.push_back((up / sub).lexically_normal());
    }
  }
  if (longvq_package_prefix) {
    if (const char* prefix = longvq_package_prefix(); prefix && *prefix)
      out.push_back((fs::path(prefix) / sub).lexically_normal());
  }
  std::vector<fs::path> unique;
  for (fs::path& c : out) {
    bool seen = false;
    for (const fs::path& u : unique) seen = seen || u == c;
    if (!seen) unique.push_back(std::move(c));
  }
  return unique;
}

}  // namespace

fs::path self_binary_path() {
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(&self_binary_path), &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) &&
      map && map->l_name && *map->l_name)
    return canonical_or_empty(map->l_name);  // a shared object (e.g. the Python module)
  return canonical_or_empty("/proc/self/exe");  // the executable itself
}

std::vector<fs::path> data_dir_candidates() { return candidates(fs::path(LONGVQ_INSTALL_DATADIR) / "longvq"); }

fs::path installed_data_dir() {
  std::error_code ec;
  for (const fs::path& d : data_dir_candidates())
    if (fs::is_directory(d / "models", ec)) return d;
  return {};
}

std::vector<fs::path> default_model_candidates() {
  std::vector<fs::path> out;
  for (const fs::path& d : data_dir_candidates()) out.push_back(d / "models" / kDefaultModelName);
  return out;
}

fs::path find_default_model_dir() {
  std::error_code ec;
  for (const fs::path& m : default_model_candidates())
    if (fs::is_regular_file(m / "config.json", ec)) return m;
  return {};
}

fs::path default_model_dir() {
  if (fs::path found = find_default_model_dir(); !found.empty()) return found;
  const std::vector<fs::path> all = default_model_candidates();
  return all.empty() ? fs::path("models") / kDefaultModelName : all.front();
}

std::string default_model_missing_message(const std::string& fix) {
  std::string msg = "no model given and the default model " + std::string(kDefaultModelName) +
                    " was not found; looked in:\n";
  for (const fs::path& m : default_model_candidates()) {
    msg += "  " + m.string();
    const fs::path real = canonical_or_empty(m);
    if (!real.empty() && real != m) msg += " (-> " + real.string() + ")";
    msg += "\n";
  }
  if (default_model_candidates().empty()) msg += "  (nowhere: the location of this program is unknown)\n";
  return msg + "  (an installed longvq has it in PREFIX/" LONGVQ_INSTALL_DATADIR "/longvq/models/" + kDefaultModelName +
         ")\n  " + fix;
}

std::vector<fs::path> cuda_module_candidates() {
  std::vector<fs::path> out;
  for (const fs::path& d : candidates(fs::path(LONGVQ_INSTALL_LIBDIR) / "longvq")) out.push_back(d / kCudaModuleFile);
  return out;
}

}  // namespace longvq
