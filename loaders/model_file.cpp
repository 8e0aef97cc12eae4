#include "loaders/model_file.h"

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "loaders/json_util.h"
#include "loaders/load_error.h"

namespace longvq {

namespace {
using K = LoadError::Kind;
}  // namespace

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
    if (!want_by_name.count(name)) unexpected.push_back(name);
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
    if (info.dtype != FileDType::F32 && info.dtype != FileDType::BF16) {
      throw LoadError(K::wrong_dtype, where, t.name,
                      "tensor '" + t.name + "' is " + std::string(file_dtype_name(info.dtype)) +
                      "; model weights must be F32 or BF16, re-export the model");
    }
  }
  for (const auto& t : want)  // a NaN or infinite weight poisons every output: refuse it here
    if (const auto bad = first_non_finite(*weights.find(t.name)))
      throw LoadError(K::bad_value, where, t.name,
                      "tensor '" + t.name + "' holds " + std::to_string(bad->value) + " at element " +
                          std::to_string(bad->index) + "; the file is corrupt, re-export the model");
}

ModelFile load_model_dir(const std::filesystem::path& dir, LoadMode mode) {
  const std::string where = dir.string();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw LoadError(K::missing_file, where, "",
                    std::filesystem::exists(dir, ec)
                        ? "not a directory; pass a model directory made by the exporter"
                        : "no such directory; pass a model directory made by the exporter");
  }
  if (!std::filesystem::is_regular_file(dir / "config.json", ec)) {
    throw LoadError(K::missing_file, where, "", "no config.json; pass a model directory made by the exporter");
  }
  ModelConfig cfg = load_config(dir / "config.json");
  if (!std::filesystem::is_regular_file(dir / "model.safetensors", ec)) {
    throw LoadError(K::missing_file, where, "", "no model.safetensors; the model directory is incomplete");
  }
  SafetensorsFile weights(dir / "model.safetensors", mode);
  check_model_weights(cfg, weights);
  return ModelFile{std::move(cfg), std::move(weights)};
}

}  // namespace longvq
