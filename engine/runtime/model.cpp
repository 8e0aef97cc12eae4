#include "engine/runtime/model.h"

#include <stdexcept>

#include "engine/runtime/longvq_graph.h"

namespace longvq {
namespace {

// The matrices that linear and embed_tokens read: every 2-D "*.weight" (embed, lm_head, the
// projections, fc1/fc2, classifier). Other BF16 tensors (codebooks, EMA parameters, qk scales)
// are small and feed ops that take f32 only; they are widened.
bool runs_as_bf16(const std::string& name, const TensorInfo& info) {
  return info.shape.size() == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
}

}  // namespace

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::filesystem::path& dir, const ModelOptions& options) {
  std::shared_ptr<Model> m(new Model());
  m->dir_ = dir;
  m->options_ = options;
  m->file_ = std::make_unique<ModelFile>(load_model_dir(dir, options.load_mode));
  m->config_ = m->file_->config;
  m->device_ = &longvq::device(options.backend);
  Device& dev = *m->device_;

  auto keep = [&](const std::string& name, std::vector<int64_t> shape, const void* host, DType dtype,
                  bool in_place) -> const TensorRef& {
    TensorRef ref{nullptr, dtype, std::move(shape)};
    if (in_place) {
      ref.data = const_cast<void*>(host);  // read-only by contract: kernels never write weights
    } else {
      m->buffers_.emplace_back(dev, ref.nbytes());
      dev.upload(m->buffers_.back().data(), host, ref.nbytes());
      ref.data = m->buffers_.back().data();
    }
    return m->weights_[name] = std::move(ref);
  };

  for (const auto& [name, info] : m->file_->weights.tensors()) {
    const bool stays_bf16 = info.dtype == FileDType::BF16 && runs_as_bf16(name, info) && dev.bf16_weights();
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
    const TensorRef& dense = keep(name, info.shape, host, dtype, /*in_place=*/as_stored && aligned && dev.host_memory());
    if (!linear_weight(m->config_, name)) continue;
    if (auto prepared = dev.prepare_weight(dense, WeightUse::linear)) {
      m->prepared_bytes_ += prepared->buffer.bytes();
      m->prepared_[{name, WeightUse::linear}] = prepared->ref;
      m->buffers_.push_back(std::move(prepared->buffer));
    }
  }

  for (const DerivedWeight& w : derived_weights(m->config_, [&](const std::string& name) {
         return to_f32(*m->file_->weights.find(name));
       }))
    keep(w.name, w.shape, w.values.data(), DType::f32, false);
  return m;
}

const TensorRef& Model::weight(const std::string& name, WeightUse use) const {
  if (use != WeightUse::dense)
    if (auto it = prepared_.find({name, use}); it != prepared_.end()) return it->second;
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("model has no weight '" + name + "'");
  return it->second;
}

}  // namespace longvq
