// The decoding state of B sequences of a causal LM (design page §4), owned by the caller.
//
// Per layer: the EMA state, the ring of the W newest keys (codes, values, raw keys when window
// keys are not quantized), per-code value sums U and counts N; plus each sequence's position.
// Its size is fixed at creation and never depends on how many tokens were consumed. A State
// lives in the memory of the backend it was made for, and is used by one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/runtime/model.h"

namespace longvq {

inline constexpr const char* kStateFormat = "longvq-state";
// Version 2 adds the CRC-32 of the data area (metadata "data_crc32"); version 1 files, which have
// none, still load, with a warning (docs/file-formats.md §3).
inline constexpr int kStateVersion = 2;
inline constexpr const char* kStateChecksumKey = "data_crc32";

// The longest context a state holds: positions (tokens consumed per sequence) stay in
// 0..kMaxStatePosition. A code's count (int32 in cache_n) can grow as large as the position,
// so this bound is what keeps every count, and every position sum in the kernels, from
// overflowing. Loading a state beyond it, or a run that would pass it, is a StateError.
inline constexpr int64_t kMaxStatePosition = INT32_MAX;

class StateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class State {
 public:
  State(const Model& model, Backend& backend, int64_t batch);

  int64_t batch() const { return batch_; }
  // Unique per State made in this process (kept when moved): what a graph's bound calls are for.
  uint64_t id() const { return id_; }
  const std::vector<int64_t>& positions() const { return pos_; }
  // A state tensor by its graph name ("state.pos", "state.layers.{i}.ema", ...).
  const TensorRef& tensor(const std::string& name) const;
  size_t bytes_per_sequence() const { return bytes_ / static_cast<size_t>(batch_); }

  void reset();                    // every sequence back to the empty context
  // StateError when `tokens` more per sequence would pass kMaxStatePosition (before a run).
  void check_advance(int64_t tokens) const;
  void advance(int64_t tokens);    // after a run consumed `tokens` per sequence (checked as above)

  // The file format of docs/file-formats.md §3 (readable by the Python reference), with the
  // CRC-32 of its data. Written whole or not at all (loaders/atomic_file.h: WriteError).
  // `extra_metadata` goes into the file's metadata beside the format entries (callers' notes).
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata = {}) const;
  // StateError for another format, version or model, a checksum mismatch, a missing or
  // misshapen tensor, or a value out of range. A file that loads but deserves a word (a
  // version 1 file: no checksum) sets *warning, when given, to that word; nothing is printed.
  static State load(const std::filesystem::path& path, const Model& model, Backend& backend,
                    std::string* warning = nullptr);

  State(State&&) noexcept = default;
  State& operator=(State&&) noexcept = default;

 private:
  struct Slot { BackendBuffer buffer; TensorRef ref; std::string dtype; };
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape);

  const Model* model_;
  Backend* backend_;
  int64_t batch_;
  uint64_t id_;
  std::vector<int64_t> pos_;
  std::map<std::string, Slot> slots_;
  size_t bytes_ = 0;
};

}  // namespace longvq
