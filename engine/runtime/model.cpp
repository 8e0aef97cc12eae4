#include "engine/runtime/model.h"

#include <cstring>
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

// An I8 matrix [R, C] with its F16 scales (model_file.h): in the engine's dense q8 layout
// (engine/ops/op.h: the values, then the scales widened to f32, exact) or dequantized to f32.
std::vector<unsigned char> q8_dense(const TensorInfo& q, const TensorInfo& s) {
  const int64_t R = q.shape.at(0), C = q.shape.at(1);
  std::vector<unsigned char> out(q8_bytes(R, C));
  if (q.nbytes) std::memcpy(out.data(), q.data, q.nbytes);
  const std::vector<float> scales = to_f32(s);
  if (!scales.empty()) std::memcpy(out.data() + q8_scales_offset(R, C), scales.data(), scales.size() * sizeof(float));
  return out;
}

std::vector<float> dequantize_int8(const TensorInfo& q, const TensorInfo& s) {
  const int64_t R = q.shape.at(0), C = q.shape.at(1), nb = q8_blocks(C);
  const std::vector<float> scales = to_f32(s);
  std::vector<float> out(static_cast<size_t>(R * C));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      int8_t v;
      std::memcpy(&v, q.data + r * C + c, 1);
      out[static_cast<size_t>(r * C + c)] = q8_value(v, scales[static_cast<size_t>(r * nb + c / kQ8Block)]);
    }
  return out;
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

  const SafetensorsFile& file = m->file_->weights;
  static_assert(kQ8Block == kInt8Block, "the engine's q8 blocks are the file's int8 blocks");
  for (const auto& [name, info] : file.tensors()) {
    if (is_int8_scales(file, name)) continue;  // read with its matrix
    // An I8 matrix (checked by load_model_dir: 2-D *.weight, F16 scales) runs as q8 on devices
    // that take it (CPU), else dequantized to f32 (CUDA): the same values either way.
    const bool int8 = info.dtype == FileDType::I8;
    const bool stays_q8 = int8 && dev.q8_weights();
    const bool stays_bf16 = info.dtype == FileDType::BF16 && runs_as_bf16(name, info) && dev.bf16_weights();
    const DType dtype = stays_q8 ? DType::q8 : stays_bf16 ? DType::bf16 : DType::f32;
    const bool as_stored = stays_bf16 || info.dtype == FileDType::F32;
    std::vector<float> converted;
    std::vector<unsigned char> q8;
    if (stays_q8) q8 = q8_dense(info, *int8_scales(file, name));
    else if (int8) converted = dequantize_int8(info, *int8_scales(file, name));
    else if (!as_stored) converted = to_f32(info);  // other BF16 / F16 weights run as F32
    const void* host = as_stored ? static_cast<const void*>(info.data)
                       : stays_q8 ? static_cast<const void*>(q8.data())
                                  : static_cast<const void*>(converted.data());
    int64_t count = 1;
    for (int64_t d : info.shape) count *= d;
    if (name.find("running_") == std::string::npos) m->parameters_ += count;
    m->weight_bytes_ += TensorRef{nullptr, dtype, info.shape}.nbytes();
    m->bf16_matrices_ += stays_bf16;
    m->q8_matrices_ += stays_q8;
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
