// Argument conversion and the engine's exceptions as Python exceptions (binding.h).
#include <cstring>
#include <limits>
#include <stdexcept>

#include "binding.h"
#include "loaders/atomic_file.h"
#include "loaders/load_error.h"
#include "tools/cli/common.h"

namespace longvq::py_binding {

ModelHandle::ModelHandle(std::shared_ptr<const Model> m, std::string p, int t, bool mm, std::string cfg)
    : model(std::move(m)),
      path(std::move(p)),
      backend(backend_kind_name(model->options().backend)),
      threads(t),
      mmap(mm),
      config_json(std::move(cfg)),
      tok(model->config().tokenizer) {}

int ModelHandle::threads_or_default(std::optional<int> t) const {
  if (!t) return threads;
  if (*t < 0) throw py::value_error("threads must be >= 0 (0 = all cores), got " + std::to_string(*t));
  return *t;
}

namespace {

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

int32_t token_value(long long v, const std::string& what) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    throw py::value_error(what + ": token id " + std::to_string(v) + " does not fit in int32");
  return static_cast<int32_t>(v);
}

}  // namespace

std::vector<int32_t> to_tokens(py::handle obj, const std::string& what) {
  std::vector<int32_t> out;
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(what + ": token ids must be integers, got a numpy array of " +
                           std::string(py::str(a.dtype())));
    if (a.ndim() != 1)
      throw py::value_error(what + ": token ids must be a 1-D array, got " + std::to_string(a.ndim()) + " dimensions");
    if (kind == 'u' && a.itemsize() == 8) {
      auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
      for (py::ssize_t i = 0; i < u.size(); ++i) {
        const uint64_t v = u.data()[i];
        if (v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
          throw py::value_error(what + ": token id " + std::to_string(v) + " does not fit in int32");
        out.push_back(static_cast<int32_t>(v));
      }
      return out;
    }
    auto v = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    out.reserve(static_cast<size_t>(v.size()));
    for (py::ssize_t i = 0; i < v.size(); ++i) out.push_back(token_value(v.data()[i], what));
    return out;
  }
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) || !py::isinstance<py::sequence>(obj))
    throw py::type_error(what + ": expected a list of token ids (ints) or a 1-D integer array, got " + type_name(obj));
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  out.reserve(seq.size());
  for (py::handle item : seq) {
    // bool is an int in Python; numpy integer scalars are not ints but have __index__.
    if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
      throw py::type_error(what + ": token ids must be ints, got " + type_name(item));
    out.push_back(token_value(py::cast<long long>(py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()))), what));
  }
  return out;
}

std::string to_bytes(py::handle obj, const std::string& what) {
  if (py::isinstance<py::str>(obj)) return py::cast<std::string>(obj);  // UTF-8
  if (py::isinstance<py::bytes>(obj)) return py::cast<std::string>(obj);
  if (PyByteArray_Check(obj.ptr()) || PyMemoryView_Check(obj.ptr()))
    return py::cast<std::string>(py::bytes(py::reinterpret_borrow<py::object>(obj)));
  throw py::type_error(what + ": expected str or bytes, got " + type_name(obj));
}

std::string to_path(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::str>(obj) && !py::hasattr(obj, "__fspath__"))
    throw py::type_error(what + ": expected a path (str or os.PathLike), got " + type_name(obj));
  py::object p = py::module_::import("os").attr("fspath")(obj);
  if (py::isinstance<py::bytes>(p)) p = py::module_::import("os").attr("fsdecode")(p);
  return py::cast<std::string>(p);
}

int64_t non_negative(int64_t v, const std::string& what) {
  if (v < 0) throw py::value_error(what + " must be >= 0, got " + std::to_string(v));
  return v;
}

int64_t positive(int64_t v, const std::string& what) {
  if (v < 1) throw py::value_error(what + " must be >= 1, got " + std::to_string(v));
  return v;
}

py::array_t<float> owned_array(std::vector<float>&& data, std::vector<py::ssize_t> shape) {
  auto* held = new std::vector<float>(std::move(data));
  py::capsule owner(held, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return py::array_t<float>(shape, held->data(), owner);
}

void register_errors(py::module_& m) {
  // longvq.LoadError(OSError): a model directory that cannot be loaded; .kind ("missing_file",
  // "bad_config", ...), .file and .tensor say what, str() is the loader's message.
  static py::exception<LoadError> load_error(m, "LoadError", PyExc_OSError);
  static py::exception<StateError> state_error(m, "StateError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const LoadError& e) {
      py::object err = py::reinterpret_borrow<py::object>(load_error.ptr())(py::str(e.what()));
      err.attr("kind") = py::str(std::string(to_string(e.kind())));
      err.attr("file") = py::str(e.file());
      err.attr("tensor") = py::str(e.tensor());
      PyErr_SetObject(load_error.ptr(), err.ptr());
    } catch (const StateError& e) {
      PyErr_SetString(state_error.ptr(), e.what());
    } catch (const TokenizerError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cli::InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cli::UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const WriteError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });
}

}  // namespace longvq::py_binding
