// The extension module longvq._longvq; the package's __init__.py is its Pythonic face.
#include "binding.h"
#include "engine/runtime/version.h"

PYBIND11_MODULE(_longvq, m) {
  using namespace longvq::py_binding;
  m.doc() = "The longvq inference engine's C++ core (use the longvq package, not this module).";
  m.attr("__version__") = std::string(longvq::version());
  m.def("build_info", [] { return longvq::build_info(); }, "How this engine was built (version, compiler, backends).");
  register_errors(m);
  register_model(m);
  register_generate(m);
  register_session(m);
}
