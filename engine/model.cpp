#include "engine/model.h"

#include <cmath>
#include <stdexcept>

#if LONGVQ_HAVE_CUDA
#include "engine/backend_cuda.h"
#endif

namespace longvq {

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

  auto keep = [&](const std::string& name, std::vector<int64_t> shape, const float* host, bool in_place) {
    TensorRef ref{nullptr, DType::f32, std::move(shape)};
    if (in_place) {
      ref.data = const_cast<float*>(host);  // read-only by contract: kernels never write weights
    } else {
      m->buffers_.emplace_back(be, ref.nbytes());
      be.upload(m->buffers_.back().data(), host, ref.nbytes());
      ref.data = m->buffers_.back().data();
    }
    m->weights_[name] = std::move(ref);
  };

  for (const auto& [name, info] : m->file_->weights.tensors()) {
    bool f32 = info.dtype == FileDType::F32 && reinterpret_cast<uintptr_t>(info.data) % alignof(float) == 0;
    std::vector<float> converted;
    if (!f32) converted = to_f32(info);  // BF16 / F16 weights run as F32
    const float* host = f32 ? reinterpret_cast<const float*>(info.data) : converted.data();
    int64_t count = 1;
    for (int64_t d : info.shape) count *= d;
    if (name.find("running_") == std::string::npos) m->parameters_ += count;
    m->weight_bytes_ += static_cast<size_t>(count) * sizeof(float);
    keep(name, info.shape, host, /*in_place=*/f32 && be.host_memory());
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
    keep(prefix + "q", shape, q.data(), false);
    keep(prefix + "pb", shape, pb.data(), false);
    keep(prefix + "g", shape, g.data(), false);
  }
  return m;
}

const TensorRef& Model::weight(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("model has no weight '" + name + "'");
  return it->second;
}

}  // namespace longvq
