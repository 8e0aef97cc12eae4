#include "loaders/model_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "loaders/file_io.h"
#include "loaders/json_util.h"
#include "loaders/load_error.h"

namespace longvq {

namespace {
using K = LoadError::Kind;

// How many tensors a config implies, without listing them: the list of a config claiming
// n_layers = 10^6 would take gigabytes and many seconds to build before failing anyway.
unsigned __int128 implied_tensor_count(const ModelConfig& cfg) {
  ModelConfig none = cfg, one = cfg;
  none.n_layers = 0;
  one.n_layers = 1;
  const size_t base = expected_tensors(none).size(), per_layer = expected_tensors(one).size() - base;
  return base + static_cast<unsigned __int128>(per_layer) * static_cast<unsigned __int128>(std::max<int64_t>(cfg.n_layers, 0));
}

// Why a model directory, or a file in it, cannot be used ("" when it can): names what the path
// is instead (a FIFO, a symbolic link loop, unreadable) rather than "no such directory".
std::string path_problem(const std::filesystem::path& path, bool directory) {
  const std::string advice = "; pass a model directory made by the exporter";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const std::string err = std::strerror(errno);
    if (errno == ENOENT) return "";  // the caller says what is missing
    if (errno == ELOOP) return "is a symbolic link loop (" + err + ")" + advice;
    if (errno == EACCES) return "cannot be read (" + err + "); check its permissions";
    return "cannot be read (" + err + ")" + advice;
  }
  if (directory ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) return "";
  return "is " + file_kind_name(st.st_mode) + (directory ? ", not a directory" : ", not a regular file") + advice;
}
// An I8 tensor of the file: a 2-D "*.weight" matrix with F16 scales [out, ceil(in / 32)].
void check_int8_matrix(const SafetensorsFile& weights, const std::string& name, const TensorInfo& info) {
  const std::string where = weights.path().string();
  const std::string fix = "; re-export the model (python3 -m longvq_ref.export convert MODEL --out NEW --int8)";
  if (info.shape.size() != 2 || !name.ends_with(".weight"))
    throw LoadError(K::wrong_dtype, where, name,
                    "tensor '" + name + "' is I8, but only the 2-D *.weight matrices may be int8" + fix);
  const std::string sname = name + kInt8ScalesSuffix;
  const std::vector<int64_t> want{info.shape[0], (info.shape[1] + kInt8Block - 1) / kInt8Block};
  const std::string need = "F16 " + detail::py_list_repr(want) + " (one per block of " + std::to_string(kInt8Block) +
                           " inputs of each of the " + std::to_string(info.shape[0]) + " rows)";
  const TensorInfo* s = weights.find(sname);
  if (s == nullptr)
    throw LoadError(K::missing_tensor, where, sname,
                    "tensor '" + sname + "' is missing: the I8 matrix '" + name + "' " +
                        detail::py_list_repr(info.shape) + " needs its scales, " + need + fix);
  if (s->dtype != FileDType::F16)
    throw LoadError(K::wrong_dtype, where, sname,
                    "tensor '" + sname + "' is " + std::string(file_dtype_name(s->dtype)) + "; the scales of '" + name +
                        "' must be " + need + fix);
  if (s->shape != want)
    throw LoadError(K::shape_mismatch, where, sname,
                    "tensor '" + sname + "' has shape " + detail::py_list_repr(s->shape) + "; the scales of '" + name +
                        "' " + detail::py_list_repr(info.shape) + " must be " + need + fix);
}
}  // namespace

const TensorInfo* int8_scales(const SafetensorsFile& weights, const std::string& name) {
  const TensorInfo* t = weights.find(name);
  if (t == nullptr || t->dtype != FileDType::I8) return nullptr;
  return weights.find(name + kInt8ScalesSuffix);
}

bool is_int8_scales(const SafetensorsFile& weights, const std::string& name) {
  const std::string_view suffix = kInt8ScalesSuffix;
  if (name.size() <= suffix.size() || !name.ends_with(suffix)) return false;
  const TensorInfo* t = weights.find(std::string_view(name).substr(0, name.size() - suffix.size()));
  return t != nullptr && t->dtype == FileDType::I8;
}

void check_model_weights(const ModelConfig& cfg, const SafetensorsFile& weights) {
  const std::string where = weights.path().string();
  const auto& meta = weights.metadata();
  if (auto it = meta.find("format"); it != meta.end() && it->second != kModelFormat) {
    throw LoadError(K::bad_format, where, "",
                    "metadata format is '" + it->second + "', not '" + kModelFormat +
                    "'; this is not a model file, pass the model.safetensors of a model directory made by the exporter");
  }
  if (auto it = meta.find("format_version");
      it != meta.end() && it->second != std::to_string(cfg.format_version)) {
    throw LoadError(K::unknown_version, where, "",
                    "metadata format_version is '" + it->second + "' but config.json says " +
                    std::to_string(cfg.format_version) + "; re-export the model with this version's exporter");
  }

  // Far more tensors implied than the file holds: say so before listing them (a guard against
  // a hostile or mistyped config; a few missing tensors get the exact message below).
  const unsigned __int128 implied = implied_tensor_count(cfg);
  const size_t held = weights.tensors().size();
  if (implied > 4 * static_cast<unsigned __int128>(held) + 64) {
    throw LoadError(K::missing_tensor, where, "",
                    "config.json implies " + (implied > INT64_MAX ? std::string("more than 2^63")
                                                                  : std::to_string(static_cast<int64_t>(implied))) +
                    " tensors (n_layers " + std::to_string(cfg.n_layers) + "), the file holds " + std::to_string(held) +
                    "; the file does not match config.json");
  }
  const std::vector<ExpectedTensor> want = expected_tensors(cfg);
  std::unordered_map<std::string, const ExpectedTensor*> want_by_name;
  for (const auto& t : want) want_by_name.emplace(t.name, &t);

  std::vector<const ExpectedTensor*> missing;
  for (const auto& t : want) {
    if (weights.find(t.name) == nullptr) missing.push_back(&t);
  }
  if (!missing.empty()) {
    const auto* first = *std::min_element(missing.begin(), missing.end(),
                                          [](const auto* a, const auto* b) { return a->name < b->name; });
    throw LoadError(K::missing_tensor, where, first->name,
                    "tensor '" + first->name + "' (shape " + detail::py_list_repr(first->shape) + ") is missing (" +
                    std::to_string(missing.size()) + " missing in all); the file does not match config.json");
  }
  std::vector<std::string> unexpected;  // tensors() is sorted by name, as Python's sorted()
  for (const auto& [name, info] : weights.tensors()) {
    if (!want_by_name.count(name) && !is_int8_scales(weights, name)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    throw LoadError(K::unexpected_tensor, where, unexpected.front(),
                    "unexpected tensor '" + unexpected.front() + "' for this config.json (" +
                    std::to_string(unexpected.size()) + " in all); the file does not match config.json");
  }
  for (const auto& t : want) {
    const TensorInfo& info = *weights.find(t.name);
    if (info.shape != t.shape) {
      throw LoadError(K::shape_mismatch, where, t.name,
                      "tensor '" + t.name + "' has shape " + detail::py_list_repr(info.shape) +
                      ", config.json implies " + detail::py_list_repr(t.shape) +
                      "; the file does not match config.json");
    }
  }
  for (const auto& t : want) {
    const TensorInfo& info = *weights.find(t.name);
    if (info.dtype == FileDType::I8) {
      check_int8_matrix(weights, t.name, info);
      continue;
    }
    if (info.dtype != FileDType::F32 && info.dtype != FileDType::BF16) {
      throw LoadError(K::wrong_dtype, where, t.name,
                      "tensor '" + t.name + "' is " + std::string(file_dtype_name(info.dtype)) +
                      "; model weights must be F32 or BF16 (or I8 for a 2-D *.weight matrix, with F16 scales), "
                      "re-export the model");
    }
  }
  for (const auto& t : want) {  // a NaN or infinite weight poisons every output: refuse it here
    const TensorInfo* info = weights.find(t.name);
    std::string name = t.name;
    if (info->dtype == FileDType::I8) {  // int8 values are finite; their scales may not be
      name += kInt8ScalesSuffix;
      info = weights.find(name);
    }
    if (const auto bad = first_non_finite(*info))
      throw LoadError(K::bad_value, where, name,
                      "tensor '" + name + "' holds " + std::to_string(bad->value) + " at element " +
                          std::to_string(bad->index) + "; the file is corrupt, re-export the model");
  }
}

ModelFile load_model_dir(const std::filesystem::path& dir, LoadMode mode) {
  const std::string where = dir.string();
  const std::string made = "; pass a model directory made by the exporter";
  if (const std::string p = path_problem(dir, true); !p.empty()) throw LoadError(K::io, where, "", p);
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) throw LoadError(K::missing_file, where, "", "no such directory" + made);
  for (const char* name : {"config.json", "model.safetensors"})
    if (const std::string p = path_problem(dir / name, false); !p.empty())
      throw LoadError(K::io, where, "", std::string(name) + " " + p);
  if (!std::filesystem::exists(dir / "config.json", ec)) {
    throw LoadError(K::missing_file, where, "", "no config.json" + made);
  }
  ModelConfig cfg = load_config(dir / "config.json");
  if (!std::filesystem::exists(dir / "model.safetensors", ec)) {
    throw LoadError(K::missing_file, where, "", "no model.safetensors; the model directory is incomplete");
  }
  SafetensorsFile weights(dir / "model.safetensors", mode);
  check_model_weights(cfg, weights);
  return ModelFile{std::move(cfg), std::move(weights)};
}

}  // namespace longvq
