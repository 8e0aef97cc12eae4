#include "engine/runtime/model.h"

#include <cmath>
#include <stdexcept>

#if LONGVQ_HAVE_CUDA
#include "engine/backends/backend_cuda.h"
#endif

namespace longvq {
namespace {

// The matrices that linear and embed_tokens read: every 2-D "*.weight" (embed, lm_head, the
// projections, fc1/fc2, classifier). Other BF16 tensors (codebooks, EMA parameters, qk scales)
// are small and feed ops that take f32 only; they are widened.
bool runs_as_bf16(const std::string& name, const TensorInfo& info) {
  return info.shape.size() == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
}

// The matrices linear reads: the 2-D "*.weight"s but the token table, which feeds embed_tokens
// and is also the LM head only when tied.
bool feeds_linear(const std::string& name, const TensorInfo& info, const ModelConfig& c) {
  if (name == "embed.weight") return c.tie_embeddings && c.task == ModelConfig::Task::lm;
  return runs_as_bf16(name, info);
}

}  // namespace

const char* backend_kind_name(BackendKind kind) { return kind == BackendKind::cuda ? "cuda" : "cpu"; }

bool cuda_backend_available(std::string* why) {
#if LONGVQ_HAVE_CUDA
  std::string reason;
  if (cuda_device_count(&reason) > 0) return true;
  if (why) *why = "no CUDA device: " + reason;
  return false;
#else
  if (why) *why = "this build has no CUDA backend (configure with -DLONGVQ_CUDA=ON where nvcc is installed)";
  return false;
#endif
}

BackendKind default_backend_kind() { return cuda_backend_available() ? BackendKind::cuda : BackendKind::cpu; }

std::unique_ptr<Backend> make_backend(BackendKind kind, int threads) {
  if (kind == BackendKind::cpu) return make_cpu_backend(threads);
  std::string why;
  if (!cuda_backend_available(&why)) throw std::runtime_error("cannot use the CUDA backend: " + why + "; use the CPU backend");
#if LONGVQ_HAVE_CUDA
  return make_cuda_backend();
#else
  throw std::logic_error("unreachable");
#endif
}

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::filesystem::path& dir, const ModelOptions& options) {
  std::shared_ptr<Model> m(new Model());
  m->dir_ = dir;
  m->options_ = options;
  m->file_ = std::make_unique<ModelFile>(load_model_dir(dir, options.load_mode));
  m->config_ = m->file_->config;
  m->backend_ = make_backend(options.backend, options.threads);
  Backend& be = *m->backend_;

  auto keep = [&](const std::string& name, std::vector<int64_t> shape, const void* host, DType dtype, bool in_place) {
    TensorRef ref{nullptr, dtype, std::move(shape)};
    if (in_place) {
      ref.data = const_cast<void*>(host);  // read-only by contract: kernels never write weights
    } else {
      m->buffers_.emplace_back(be, ref.nbytes());
      be.upload(m->buffers_.back().data(), host, ref.nbytes());
      ref.data = m->buffers_.back().data();
    }
    m->weights_[name] = std::move(ref);
  };

  for (const auto& [name, info] : m->file_->weights.tensors()) {
    const bool stays_bf16 = info.dtype == FileDType::BF16 && runs_as_bf16(name, info) && be.bf16_weights();
    const DType dtype = stays_bf16 ? DType::bf16 : DType::f32;
    const bool as_stored = stays_bf16 || info.dtype == FileDType::F32;
    std::vector<float> converted;
    if (!as_stored) converted = to_f32(info);  // other BF16 / F16 weights run as F32
    const void* host = as_stored ? static_cast<const void*>(info.data) : converted.data();
    int64_t count = 1;
    for (int64_t d : info.shape) count *= d;
    if (name.find("running_") == std::string::npos) m->parameters_ += count;
    m->weight_bytes_ += static_cast<size_t>(count) * dtype_size(dtype);
    m->bf16_matrices_ += stays_bf16;
    const bool aligned = reinterpret_cast<uintptr_t>(host) % dtype_size(dtype) == 0;
    keep(name, info.shape, host, dtype, /*in_place=*/as_stored && aligned && be.host_memory());
    if (be.wants_linear_panels() && feeds_linear(name, info, m->config_)) {
      const TensorRef w{const_cast<void*>(host), dtype, info.shape};
      TensorRef panels{nullptr, dtype, linear_panels_shape(w.shape[0], w.shape[1])};
      m->buffers_.emplace_back(be, panels.nbytes());
      panels.data = m->buffers_.back().data();
      if (be.host_memory()) {
        pack_linear_panels(w, panels.data);  // straight into backend memory
      } else {
        std::vector<unsigned char> staged(panels.nbytes());
        pack_linear_panels(w, staged.data());
        be.upload(panels.data, staged.data(), panels.nbytes());
      }
      m->panel_bytes_ += panels.nbytes();
      m->weights_[name + ".panels"] = std::move(panels);
    }
  }

  // Derived EMA coefficients (design page §2.2), in double then rounded once:
  //   p = σ(delta), q = 1 − σ(delta)·σ(alpha), pb = p·beta, g = gamma·sqrt(1/N)
  const ModelConfig& c = m->config_;
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  for (int i = 0; i < c.n_layers; ++i) {
    std::string prefix = "layers." + std::to_string(i) + ".mix.ema.";
    auto read = [&](const std::string& leaf) { return to_f32(*m->file_->weights.find(prefix + leaf)); };
    std::vector<float> delta = read("delta"), alpha = read("alpha"), beta = read("beta"), gamma = read("gamma");
    size_t count = gamma.size();
    std::vector<float> q(count), pb(count), g(count);
    double scale = std::sqrt(1.0 / c.ema_ndim);
    for (size_t j = 0; j < count; ++j) {
      double p = sigmoid(delta[j]);
      q[j] = static_cast<float>(1.0 - p * sigmoid(alpha[j]));
      pb[j] = static_cast<float>(p * beta[j]);
      g[j] = static_cast<float>(gamma[j] * scale);
    }
    std::vector<int64_t> shape = {c.ema_channels(), c.ema_ndim};
    keep(prefix + "q", shape, q.data(), DType::f32, false);
    keep(prefix + "pb", shape, pb.data(), DType::f32, false);
    keep(prefix + "g", shape, g.data(), DType::f32, false);
  }
  return m;
}

const TensorRef& Model::weight(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("model has no weight '" + name + "'");
  return it->second;
}

}  // namespace longvq
