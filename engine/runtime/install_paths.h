// Where longvq finds its files at run time (the default model, the CUDA backend module) without
// compiled-in absolute paths: relative to the binary this code is linked into, so that an
// installed tree (`cmake --install build --prefix P`, any P, moved afterwards or not) and the
// build tree (which mirrors the layout: build/bin/longvq, build/share/longvq/models) both work.
//
//   P/bin/longvq                          the executable (or any binary linking the engine)
//   P/share/longvq/models/austen-lm       the default model          (installed_data_dir() = P/share/longvq)
//   P/lib/longvq/liblongvq_cuda_backend.so  the CUDA module, when built
//
// A program built against an installed longvq with find_package(longvq) also searches that
// package's prefix (the CMake package compiles it into the program; tools/cmake/).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace longvq {

// The model used when the caller names none (and $LONGVQ_MODEL is unset: the front ends' rule).
inline constexpr const char* kDefaultModelName = "austen-lm";

// The file this code is linked into: the executable (/proc/self/exe), or the shared object that
// holds it (e.g. the Python module). Symlinks resolved. Empty when it cannot be told.
std::filesystem::path self_binary_path();

// The directories that may hold longvq's data (models/...), in search order, with D the directory
// of self_binary_path(): D/../share/longvq, D itself (models next to the binary), D/../../share/longvq
// up to D/../../../../share/longvq (a Python module in lib/pythonX/site-packages/longvq, a test in
// build/tests/NAME), then the find_package(longvq) prefix's share/longvq. Lexically normalized.
std::vector<std::filesystem::path> data_dir_candidates();

// The first of data_dir_candidates() that has a models/ directory; empty when none has.
std::filesystem::path installed_data_dir();

// Where the default model is looked for: data_dir_candidates()[i] / "models" / kDefaultModelName.
std::vector<std::filesystem::path> default_model_candidates();

// The first of default_model_candidates() that has a config.json; empty when none has.
std::filesystem::path find_default_model_dir();

// The default model directory: find_default_model_dir(), else the first candidate (which does not
// exist: the caller reports it with default_model_missing_message()).
std::filesystem::path default_model_dir();

// Says that no default model was found and every place looked in (a symlinked place also shows
// where it leads); `fix` is appended as the caller's way out, e.g. "pass -m DIR or set LONGVQ_MODEL=DIR".
std::string default_model_missing_message(const std::string& fix);

// Where the CUDA backend module (liblongvq_cuda_backend.so) is looked for, in order: D/../lib/longvq,
// D, the further ancestors' lib/longvq as above, the find_package prefix's lib/longvq. (The loader
// tries $LONGVQ_CUDA_MODULE first and the build tree's module last.)
std::vector<std::filesystem::path> cuda_module_candidates();

}  // namespace longvq
