// A loaded model: its config and every weight on a device, read-only after load.
//
// One Model may be shared by any number of threads (each with its own Session and State):
// nothing in it changes after load(). Weights are used in place when the device works in host
// memory and the file is mmap'd F32; otherwise they are converted to F32 and uploaded once.
// BF16 weight matrices stay BF16 on devices that run them (CPU): half the bytes per token; I8
// matrices (with their per-block scales) run as q8_0 there, else are dequantized to f32. The
// device may also keep its own layout of a weight for the ops that read it (Device::
// prepare_weight: the CPU packs linear matrices); the model holds both and the graph asks for
// the one its op reads (WeightUse), never knowing what the layout is.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "engine/backends/backend.h"
#include "loaders/config.h"
#include "loaders/model_file.h"

namespace longvq {

struct ModelOptions {
  BackendKind backend = BackendKind::cpu;
  LoadMode load_mode = LoadMode::mmap;
};

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::filesystem::path& dir, const ModelOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  Device& device() const { return *device_; }
  // A weight by its file name (design page §6), or a derived one (layers.{i}.mix.ema.{q,pb,g}),
  // as the op reading it wants it: `use` = linear gives the device's prepared copy if it made one.
  const TensorRef& weight(const std::string& name, WeightUse use = WeightUse::dense) const;
  bool has_weight(const std::string& name) const { return weights_.count(name) > 0; }
  size_t weight_bytes() const { return weight_bytes_; }      // bytes of the file's tensors as run (f32, bf16, q8_0)
  int bf16_matrices() const { return bf16_matrices_; }        // how many weights run as bf16
  int q8_matrices() const { return q8_matrices_; }            // how many weights run as q8_0 (int8 files, CPU)
  size_t prepared_bytes() const { return prepared_bytes_; }  // the device's own copies (e.g. CPU panels)
  int64_t parameter_count() const { return parameters_; }
  const std::filesystem::path& dir() const { return dir_; }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();

 private:
  Model() = default;
  std::filesystem::path dir_;
  ModelConfig config_;
  ModelOptions options_;
  Device* device_ = nullptr;
  std::unique_ptr<ModelFile> file_;  // kept open: mmap'd weights may be used in place
  std::vector<BackendBuffer> buffers_;
  std::map<std::string, TensorRef> weights_;
  std::map<std::pair<std::string, WeightUse>, TensorRef> prepared_;
  size_t weight_bytes_ = 0;
  int bf16_matrices_ = 0;
  int q8_matrices_ = 0;
  size_t prepared_bytes_ = 0;
  int64_t parameters_ = 0;
};

}  // namespace longvq
