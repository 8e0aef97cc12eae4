#include "engine/runtime/state.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "loaders/crc32.h"
#include "loaders/safetensors.h"
#include "loaders/safetensors_writer.h"

namespace longvq {
namespace {

uint64_t next_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

const char* file_dtype(DType t) { return t == DType::f32 ? "F32" : t == DType::i32 ? "I32" : "I64"; }

// Values a kernel would index with must be in range (a hostile file must not reach memory),
// and every float finite (a NaN or infinity in a state would poison every later token).
// Positions are checked before this (check_positions), so counts can be held against them.
void check_values(const std::filesystem::path& path, const std::string& name, const TensorInfo& t,
                  const ModelConfig& c, const std::vector<int64_t>& pos) {
  auto bad = [&](const std::string& what) {
    throw StateError(path.string() + ": tensor '" + name + "' " + what + "; the file is corrupt");
  };
  if (name.ends_with("ring_codes") || name.ends_with("cache_n")) {
    const bool codes = name.ends_with("ring_codes");
    const size_t per_row = t.nbytes / 4 / pos.size();
    for (size_t b = 0; b < pos.size(); ++b) {
      int64_t sum = 0;
      for (size_t i = 0; i < per_row; ++i) {
        int32_t v;
        std::memcpy(&v, t.data + 4 * (b * per_row + i), 4);
        if (codes ? (v < -1 || v >= c.attention.codebook_size) : v < 0)
          bad(codes ? "holds a code outside the codebook" : "holds a negative count");
        sum += v;
      }
      // Each count is a key that left the window: never more of them than tokens consumed.
      if (!codes && sum > pos[b])
        bad("counts " + std::to_string(sum) + " keys for sequence " + std::to_string(b) + ", more than its position " +
            std::to_string(pos[b]));
    }
  } else if (t.dtype == FileDType::F32) {
    if (const auto nf = first_non_finite(t)) bad("holds a value that is not finite (" + std::to_string(nf->value) + ")");
  }
}

std::vector<int64_t> check_positions(const std::filesystem::path& path, const TensorInfo& t) {
  std::vector<int64_t> pos(t.nbytes / 8);
  std::memcpy(pos.data(), t.data, t.nbytes);
  for (int64_t p : pos)
    if (p < 0 || p > kMaxStatePosition)
      throw StateError(path.string() + ": tensor 'pos' holds the position " + std::to_string(p) + ", outside 0.." +
                       std::to_string(kMaxStatePosition) + " (the longest context a state holds); the file is corrupt");
  return pos;
}

// The checksum of a version 2 file; a version 1 file has none (the caller is warned).
void check_checksum(const std::filesystem::path& path, const SafetensorsFile& file, const std::string& stored) {
  const std::string computed = crc32_hex(crc32(file.data_area(), file.data_area_size()));
  if (stored.empty())
    throw StateError(path.string() + ": a version " + std::to_string(kStateVersion) + " state file needs metadata '" +
                     kStateChecksumKey + "', which is missing; the file is corrupt: recompute the state from the prompt");
  if (stored != computed)
    throw StateError(path.string() + ": the checksum of the state's data does not match (stored " + stored +
                     ", computed " + computed + "): the file is damaged; recompute the state from the prompt");
}

}  // namespace

State::State(const Model& model, Backend& backend, int64_t batch)
    : model_(&model), backend_(&backend), batch_(batch), id_(next_id()), pos_(static_cast<size_t>(batch), 0) {
  if (batch < 1) throw std::invalid_argument("a State needs at least one sequence");
  const ModelConfig& c = model.config();
  if (c.task != ModelConfig::Task::lm || c.bidirectional)
    throw std::invalid_argument("only a causal LM has a decoding state; this model is a classifier");
  const int64_t d = c.d_model, h = c.hidden_dim, e = c.z_dim, W = c.attention.window, S = c.attention.codebook_size;
  add("state.pos", DType::i64, {batch});
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string L = "state.layers." + std::to_string(i) + ".";
    add(L + "ema", DType::f32, {batch, d, c.ema_ndim});
    add(L + "ring_codes", DType::i32, {batch, W});
    add(L + "ring_values", DType::f32, {batch, W, h});
    if (!c.attention.quantize_window_keys) add(L + "ring_keys", DType::f32, {batch, W, e});
    add(L + "cache_u", DType::f32, {batch, S, h});
    add(L + "cache_n", DType::i32, {batch, S});
  }
  reset();
}

void State::add(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  TensorRef ref{nullptr, dtype, std::move(shape)};
  Slot slot{BackendBuffer(*backend_, ref.nbytes()), ref, file_dtype(dtype)};
  slot.ref.data = slot.buffer.data();
  bytes_ += ref.nbytes();
  slots_.emplace(name, std::move(slot));
}

const TensorRef& State::tensor(const std::string& name) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) throw std::logic_error("state has no tensor '" + name + "'");
  return it->second.ref;
}

void State::reset() {
  for (auto& [name, slot] : slots_) {
    if (name.ends_with("ring_codes")) {  // −1 marks an empty ring slot
      std::vector<int32_t> empty(static_cast<size_t>(slot.ref.numel()), -1);
      backend_->upload(slot.ref.data, empty.data(), slot.ref.nbytes());
    } else {
      backend_->fill_zero(slot.ref.data, slot.ref.nbytes());
    }
  }
  std::fill(pos_.begin(), pos_.end(), 0);
}

void State::check_advance(int64_t tokens) const {
  for (size_t b = 0; b < pos_.size(); ++b)
    if (tokens < 0 || tokens > kMaxStatePosition - pos_[b])
      throw StateError("sequence " + std::to_string(b) + " of the state is at position " + std::to_string(pos_[b]) +
                       "; " + std::to_string(tokens) + " more tokens would pass the longest context a state holds (" +
                       std::to_string(kMaxStatePosition) + " tokens): start a new context");
}

void State::advance(int64_t tokens) {
  check_advance(tokens);
  for (int64_t& p : pos_) p += tokens;
  const TensorRef& pos = tensor("state.pos");
  backend_->upload(pos.data, pos_.data(), pos.nbytes());
}

void State::save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata) const {
  std::vector<std::vector<char>> host;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, slot] : slots_) {
    host.emplace_back(slot.ref.nbytes());
    backend_->download(host.back().data(), slot.ref.data, slot.ref.nbytes());
    tensors.push_back({name.substr(6), slot.dtype, slot.ref.shape, host.back().data(), slot.ref.nbytes()});
  }
  std::map<std::string, std::string> meta = extra_metadata;
  meta["format"] = kStateFormat;
  meta["version"] = std::to_string(kStateVersion);
  meta["config"] = model_->config().fingerprint();
  write_safetensors(path, std::move(tensors), meta, kStateChecksumKey);
}

State State::load(const std::filesystem::path& path, const Model& model, Backend& backend, std::string* warning) {
  SafetensorsFile file(path, LoadMode::read);
  auto meta = [&](const std::string& key) {
    auto it = file.metadata().find(key);
    return it == file.metadata().end() ? std::string() : it->second;
  };
  if (meta("format") != kStateFormat)
    throw StateError(path.string() + ": not a longvq state file (format '" + meta("format") + "')");
  if (meta("version") == std::to_string(kStateVersion)) {
    check_checksum(path, file, meta(kStateChecksumKey));
  } else if (meta("version") == "1") {
    if (warning)
      *warning = path.string() + ": a version 1 state file has no checksum, so damage to it cannot be detected; "
                 "save it again to get one";
  } else {
    throw StateError(path.string() + ": state version " + meta("version") + " is not supported (this engine reads 1 "
                     "and " + std::to_string(kStateVersion) + "); recompute the state from the prompt");
  }
  if (meta("config") != model.config().fingerprint())
    throw StateError(path.string() + ": the state was made by another model (" + meta("config") + "), not this one (" +
                     model.config().fingerprint() + "); recompute it with this model");
  const TensorInfo* pos = file.find("pos");
  if (!pos || pos->shape.size() != 1 || pos->shape[0] < 1 || pos->dtype != FileDType::I64)
    throw StateError(path.string() + ": tensor 'pos' is missing or malformed; the file is incomplete");
  const int64_t batch = pos->shape[0];
  // Every tensor's shape is checked against a one-sequence state before the state is made:
  // a file claiming a million sequences must not get memory for them first.
  const State one(model, backend, 1);
  for (const auto& [name, slot] : one.slots_) {
    const std::string file_name = name.substr(6);
    const TensorInfo* t = file.find(file_name);
    if (!t) throw StateError(path.string() + ": tensor '" + file_name + "' is missing; the file is incomplete");
    std::vector<int64_t> shape = slot.ref.shape;
    shape[0] = batch;
    if (t->shape != shape || std::string(file_dtype_name(t->dtype)) != slot.dtype)
      throw StateError(path.string() + ": tensor '" + file_name + "' does not have the shape and type this model's "
                       "state needs; recompute the state with this model");
  }
  const std::vector<int64_t> positions = check_positions(path, *pos);
  State state(model, backend, batch);
  for (auto& [name, slot] : state.slots_) {
    const TensorInfo* t = file.find(name.substr(6));
    check_values(path, name.substr(6), *t, model.config(), positions);
    backend.upload(slot.ref.data, t->data, t->nbytes);
  }
  state.pos_ = positions;
  return state;
}

}  // namespace longvq
