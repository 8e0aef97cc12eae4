// A loaded model: its config and every weight on a backend, read-only after load.
//
// One Model may be shared by any number of threads (each with its own Session and State):
// nothing in it changes after load(). Weights are used in place when the backend works in host
// memory and the file is mmap'd F32; otherwise they are converted to F32 and uploaded once.
// BF16 weight matrices stay BF16 on backends that run them (CPU): half the bytes per token. A
// backend that wants linear matrices as panels (CPU) gets a packed copy of each, made here once.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "engine/backends/backend.h"
#include "loaders/config.h"
#include "loaders/model_file.h"

namespace longvq {

enum class BackendKind { cpu, cuda };
const char* backend_kind_name(BackendKind);

struct ModelOptions {
  BackendKind backend = BackendKind::cpu;
  LoadMode load_mode = LoadMode::mmap;
  int threads = 0;  // CPU threads; 0 = all cores
};

std::unique_ptr<Backend> make_backend(BackendKind kind, int threads);
// Whether a CUDA backend can be made here: the build has it and a device is present. When not,
// *why says so (e.g. "this build has no CUDA backend", "no CUDA device: ...").
bool cuda_backend_available(std::string* why = nullptr);
// `auto`: CUDA when available, else the CPU.
BackendKind default_backend_kind();

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::filesystem::path& dir, const ModelOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  // A weight by its file name (design page §6), or a derived one: layers.{i}.mix.ema.{q,pb,g}.
  const TensorRef& weight(const std::string& name) const;
  bool has_weight(const std::string& name) const { return weights_.count(name) > 0; }
  size_t weight_bytes() const { return weight_bytes_; }  // bytes of the file's tensors as run (f32 or bf16)
  int bf16_matrices() const { return bf16_matrices_; }    // how many weights run as bf16
  size_t panel_bytes() const { return panel_bytes_; }     // linear matrices repacked for the backend (op.h)
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
  std::unique_ptr<ModelFile> file_;           // kept open: mmap'd weights may be used in place
  std::unique_ptr<Backend> backend_;          // owns the uploaded weight memory
  std::vector<BackendBuffer> buffers_;
  std::map<std::string, TensorRef> weights_;
  size_t weight_bytes_ = 0;
  int bf16_matrices_ = 0;
  size_t panel_bytes_ = 0;
  int64_t parameters_ = 0;
};

}  // namespace longvq
