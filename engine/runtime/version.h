#pragma once

#include <string>
#include <string_view>

namespace longvq {

// Project version, e.g. "0.1.0".
std::string_view version();

// One line describing how this binary was built: version, compiler, C++ standard
// and whether the CUDA backend was compiled in ("cuda=on" / "cuda=off").
std::string build_info();

}  // namespace longvq
