#include "engine/runtime/state.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "engine/runtime/state_layout.h"
#include "loaders/atomic_file.h"
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

State::State(const Model& model, Backend& backend, int64_t rows)
    : model_(&model), backend_(&backend), rows_(rows), id_(next_id()), pos_(static_cast<size_t>(rows), 0) {
  if (rows < 1) throw std::invalid_argument("a State needs at least one sequence");
  const ModelConfig& c = model.config();
  if (c.task != ModelConfig::Task::lm || c.bidirectional)
    throw std::invalid_argument("only a causal LM has a decoding state; this model is a classifier");
  constexpr size_t kAlign = 64;  // each slot starts on a cache line, as its own block did
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const StateTensor& t : state_layout(c)) {
    std::vector<int64_t> shape{rows};
    shape.insert(shape.end(), t.row_shape.begin(), t.row_shape.end());
    TensorRef ref{nullptr, t.dtype, std::move(shape)};
    const size_t row_bytes = ref.nbytes() / static_cast<size_t>(rows);
    offsets.push_back(total);
    total += (ref.nbytes() + kAlign - 1) / kAlign * kAlign;
    row_bytes_ += row_bytes;
    slots_.push_back(Slot{t.name, ref, row_bytes, t.empty_value});
  }
  storage_ = BackendBuffer(*backend_, total);
  for (size_t i = 0; i < slots_.size(); ++i)
    slots_[i].ref.data = static_cast<char*>(storage_.data()) + offsets[i];
  reset();
}

const TensorRef& State::tensor(const std::string& name) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s.ref;
  throw std::logic_error("state has no tensor '" + name + "'");
}

void State::check_row(int64_t row, const char* what) const {
  if (row < 0 || row >= rows_)
    throw std::out_of_range(std::string(what) + ": row " + std::to_string(row) + " is outside this state's rows 0.." +
                            std::to_string(rows_ - 1));
}

void State::reset_rows(int64_t first, int64_t count) {
  for (Slot& s : slots_) {
    char* base = static_cast<char*>(s.ref.data) + static_cast<size_t>(first) * s.row_bytes;
    const size_t bytes = static_cast<size_t>(count) * s.row_bytes;
    if (s.empty_value == 0) {
      backend_->fill_zero(base, bytes);
    } else {  // only i32 tensors have another empty value (−1 marks an empty ring slot)
      std::vector<int32_t> empty(bytes / sizeof(int32_t), s.empty_value);
      backend_->upload(base, empty.data(), bytes);
    }
  }
  std::fill_n(pos_.begin() + first, count, 0);
}

void State::reset() { reset_rows(0, rows_); }

void State::reset(int64_t row) {
  check_row(row, "State::reset");
  reset_rows(row, 1);
}

void State::upload_positions() {
  const TensorRef& pos = tensor("state.pos");
  backend_->upload(pos.data, pos_.data(), pos.nbytes());
}

void State::check_advance(std::span<const int32_t> rows, int64_t tokens) const {
  auto check = [&](size_t b) {
    if (tokens < 0 || tokens > kMaxStatePosition - pos_[b])
      throw StateError("sequence " + std::to_string(b) + " of the state is at position " + std::to_string(pos_[b]) +
                       "; " + std::to_string(tokens) + " more tokens would pass the longest context a state holds (" +
                       std::to_string(kMaxStatePosition) + " tokens): start a new context");
  };
  if (rows.empty())
    for (size_t b = 0; b < pos_.size(); ++b) check(b);
  for (int32_t r : rows) check(static_cast<size_t>(r));
}

void State::advance(int64_t tokens) {
  check_advance({}, tokens);
  for (int64_t& p : pos_) p += tokens;
  upload_positions();
}

void State::advance(std::span<const int32_t> rows, int64_t tokens) {
  check_advance(rows, tokens);
  for (int32_t r : rows) pos_[static_cast<size_t>(r)] += tokens;
  upload_positions();
}

State State::copy_row(int64_t row) const {
  check_row(row, "State::copy_row");
  State out(*model_, *backend_, 1);
  out.set_row(0, *this, row);
  return out;
}

void State::set_row(int64_t row, const State& src, int64_t src_row) {
  check_row(row, "State::set_row");
  src.check_row(src_row, "State::set_row (source)");
  if (src.model_->config().fingerprint() != model_->config().fingerprint())
    throw std::invalid_argument("State::set_row: the source state belongs to another model (" +
                                src.model_->config().fingerprint() + "), not this one (" +
                                model_->config().fingerprint() + ")");
  std::vector<char> host;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot &to = slots_[i], &from = src.slots_[i];  // same layout: same model config
    char* dst = static_cast<char*>(to.ref.data) + static_cast<size_t>(row) * to.row_bytes;
    const char* from_ptr = static_cast<const char*>(from.ref.data) + static_cast<size_t>(src_row) * from.row_bytes;
    if (src.backend_ == backend_) {
      backend_->copy(dst, from_ptr, to.row_bytes);
    } else {  // another backend (another session): through the host
      host.resize(to.row_bytes);
      src.backend_->download(host.data(), from_ptr, to.row_bytes);
      backend_->upload(dst, host.data(), to.row_bytes);
    }
  }
  pos_[static_cast<size_t>(row)] = src.pos_[static_cast<size_t>(src_row)];
}

std::string State::to_bytes(const std::map<std::string, std::string>& extra_metadata) const {
  std::vector<const Slot*> order;  // by name, as the files have always been written
  for (const Slot& s : slots_) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const Slot* a, const Slot* b) { return a->name < b->name; });
  std::vector<std::vector<char>> host;
  std::vector<TensorToWrite> tensors;
  for (const Slot* s : order) {
    host.emplace_back(s->ref.nbytes());
    backend_->download(host.back().data(), s->ref.data, s->ref.nbytes());
    tensors.push_back({s->name.substr(6), file_dtype(s->ref.dtype), s->ref.shape, host.back().data(), s->ref.nbytes()});
  }
  std::map<std::string, std::string> meta = extra_metadata;
  meta["format"] = kStateFormat;
  meta["version"] = std::to_string(kStateVersion);
  meta["config"] = model_->config().fingerprint();
  return safetensors_bytes(std::move(tensors), meta, kStateChecksumKey);
}

void State::save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata) const {
  write_file_atomically(path, to_bytes(extra_metadata));
}

void State::save_row(const std::filesystem::path& path, int64_t row,
                     const std::map<std::string, std::string>& extra_metadata) const {
  copy_row(row).save(path, extra_metadata);
}

State State::load(const std::filesystem::path& path, const Model& model, Backend& backend, std::string* warning) {
  return from_file(SafetensorsFile(path, LoadMode::read), model, backend, warning);
}

State State::from_bytes(std::string_view bytes, const std::string& name, const Model& model, Backend& backend,
                        std::string* warning) {
  return from_file(SafetensorsFile(bytes, name), model, backend, warning);
}

State State::from_file(const SafetensorsFile& file, const Model& model, Backend& backend, std::string* warning) {
  const std::filesystem::path& path = file.path();
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
  const int64_t rows = pos->shape[0];
  // Every tensor's shape is checked against the layout before the state is made: a file
  // claiming a million sequences must not get memory for them first.
  const std::vector<StateTensor> layout = state_layout(model.config());
  for (const StateTensor& t : layout) {
    const TensorInfo* info = file.find(t.file_name());
    if (!info) throw StateError(path.string() + ": tensor '" + t.file_name() + "' is missing; the file is incomplete");
    std::vector<int64_t> shape{rows};
    shape.insert(shape.end(), t.row_shape.begin(), t.row_shape.end());
    if (info->shape != shape || std::string(file_dtype_name(info->dtype)) != file_dtype(t.dtype))
      throw StateError(path.string() + ": tensor '" + t.file_name() + "' does not have the shape and type this model's "
                       "state needs; recompute the state with this model");
  }
  const std::vector<int64_t> positions = check_positions(path, *pos);
  State state(model, backend, rows);
  for (Slot& slot : state.slots_) {
    const std::string file_name = slot.name.substr(6);
    const TensorInfo* t = file.find(file_name);
    check_values(path, file_name, *t, model.config(), positions);
    backend.upload(slot.ref.data, t->data, t->nbytes);
  }
  state.pos_ = positions;
  return state;
}

void State::load_row(const std::filesystem::path& path, int64_t row, std::string* warning) {
  check_row(row, "State::load_row");
  const State one = load(path, *model_, *backend_, warning);
  if (one.rows() != 1)
    throw StateError(path.string() + ": holds " + std::to_string(one.rows()) +
                     " sequences; load_row takes a file of one (State::save_row writes those)");
  set_row(row, one, 0);
}

}  // namespace longvq
