// What the binding's source files share: the Model handle Python holds, argument conversion
// (tokens, texts, pixels, paths) with clear TypeError/ValueError, and the registration functions
// of each part of the module (model.cpp, generate.cpp, session.cpp).
//
// Threads: every engine call runs with the GIL released (py::gil_scoped_release), so Python
// threads compute in parallel. A Model is immutable and shared; objects that own a Session
// (Session, Generator) guard it with a mutex taken after the GIL is released, so two threads
// using one of them take turns instead of racing.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/longvq.h"
#include "engine/serving/classifier.h"
#include "engine/text/tokenizer.h"

namespace longvq::py_binding {

namespace py = pybind11;

// A loaded model as Python holds it.
struct ModelHandle {
  std::shared_ptr<const Model> model;
  std::string path;          // as given (or resolved from $LONGVQ_MODEL / the default)
  std::string backend;       // "cpu" | "cuda": what it runs on
  int threads = 0;           // load()'s default for the sessions it makes; 0 = all cores
  bool mmap = true;
  std::string config_json;   // config.json's text, as read at load
  Tokenizer tok;

  // The last classify() call's Classifier, reused when free (its plan only grows).
  std::mutex classifier_mutex;
  std::unique_ptr<Classifier> classifier;

  ModelHandle(std::shared_ptr<const Model> m, std::string p, int t, bool mm, std::string cfg);
  const ModelConfig& config() const { return model->config(); }
  bool is_lm() const { return config().task == ModelConfig::Task::lm; }
  int threads_or_default(std::optional<int> t) const;
};
using ModelPtr = std::shared_ptr<ModelHandle>;

// Token ids from a list/tuple of ints or a 1-D integer numpy array (TypeError for anything else,
// ValueError for values outside int32). `what` names the argument in messages.
std::vector<int32_t> to_tokens(py::handle obj, const std::string& what);
// A str (its UTF-8 bytes) or bytes-like object → bytes.
std::string to_bytes(py::handle obj, const std::string& what);
// A str or os.PathLike → a path string.
std::string to_path(py::handle obj, const std::string& what);
// A non-negative int argument (ValueError otherwise).
int64_t non_negative(int64_t v, const std::string& what);
int64_t positive(int64_t v, const std::string& what);

// A float32 array [shape] that owns `data` (no copy: the vector is moved into a capsule).
py::array_t<float> owned_array(std::vector<float>&& data, std::vector<py::ssize_t> shape);

void register_errors(py::module_& m);
void register_model(py::module_& m);
void register_generate(py::module_& m);
void register_session(py::module_& m);

}  // namespace longvq::py_binding
