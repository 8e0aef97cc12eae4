// The decoding state of R sequences of a causal LM (design page §4), owned by the caller.
//
// Per layer: the EMA state, the ring of the W newest keys (codes, values, raw keys when window
// keys are not quantized), per-code value sums U and counts N; plus each sequence's position
// (the tensors of state_layout.h). Its size is fixed at creation and never depends on how many
// tokens were consumed. Rows are slots: each is one independent sequence that can be reset,
// copied out, copied in from another State and saved on its own, and a Session steps any subset
// of them. A State lives in the memory of the backend it was made for, and is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/runtime/model.h"

namespace longvq {

class SafetensorsFile;

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
  State(const Model& model, Backend& backend, int64_t rows);

  const Model& model() const { return *model_; }
  Backend& backend() const { return *backend_; }  // whose memory holds it
  int64_t rows() const { return rows_; }
  int64_t batch() const { return rows_; }  // the same: one sequence per row
  // Unique per State made in this process (kept when moved): what a graph's bound calls are for.
  uint64_t id() const { return id_; }
  const std::vector<int64_t>& positions() const { return pos_; }
  // A state tensor by its graph name ("state.pos", "state.layers.{i}.ema", ...): [R, ...].
  const TensorRef& tensor(const std::string& name) const;
  size_t bytes_per_sequence() const { return row_bytes_; }

  void reset();                 // every sequence back to the empty context
  void reset(int64_t row);      // one sequence back to the empty context
  // StateError when `tokens` more in any of `rows` (every row when empty) would pass
  // kMaxStatePosition: checked before a run, so a run that would overflow changes nothing.
  void check_advance(std::span<const int32_t> rows, int64_t tokens) const;
  void advance(int64_t tokens);  // after a run consumed `tokens` in every row (checked as above)
  void advance(std::span<const int32_t> rows, int64_t tokens);  // ... in each of `rows`

  // Row `row` as a 1-row State on the same backend.
  State copy_row(int64_t row) const;
  // Makes row `row` a copy of row `src_row` of `src` (a State of a model with the same state
  // layout, on any backend of the same kind).
  void set_row(int64_t row, const State& src, int64_t src_row = 0);

  // The file format of docs/file-formats.md §3 (readable by the Python reference), with the
  // CRC-32 of its data. Written whole or not at all (loaders/atomic_file.h: WriteError).
  // `extra_metadata` goes into the file's metadata beside the format entries (callers' notes).
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata = {}) const;
  // StateError for another format, version or model, a checksum mismatch, a missing or
  // misshapen tensor, or a value out of range. A file that loads but deserves a word (a
  // version 1 file: no checksum) sets *warning, when given, to that word; nothing is printed.
  static State load(const std::filesystem::path& path, const Model& model, Backend& backend,
                    std::string* warning = nullptr);
  // The same format in memory (a state kept elsewhere than a file, e.g. in Redis); `name` stands
  // for the path in messages.
  std::string to_bytes(const std::map<std::string, std::string>& extra_metadata = {}) const;
  static State from_bytes(std::string_view bytes, const std::string& name, const Model& model, Backend& backend,
                          std::string* warning = nullptr);
  // One row as a 1-row state file, and a 1-row state file into one row.
  void save_row(const std::filesystem::path& path, int64_t row,
                const std::map<std::string, std::string>& extra_metadata = {}) const;
  void load_row(const std::filesystem::path& path, int64_t row, std::string* warning = nullptr);

  State(State&&) noexcept = default;
  State& operator=(State&&) noexcept = default;

 private:
  struct Slot {
    std::string name;
    TensorRef ref;  // [R, ...], inside storage_
    size_t row_bytes;
    int32_t empty_value;
  };
  void check_row(int64_t row, const char* what) const;
  static State from_file(const SafetensorsFile& file, const Model& model, Backend& backend, std::string* warning);
  void reset_rows(int64_t first, int64_t count);
  void upload_positions();

  const Model* model_;
  Backend* backend_;
  int64_t rows_;
  uint64_t id_;
  std::vector<int64_t> pos_;
  // One allocation for every slot: a server holds thousands of states, and one block each
  // keeps its memory at the state's size (21 small blocks each fragmented the heap by ~15%).
  BackendBuffer storage_;
  std::vector<Slot> slots_;  // in state_layout order
  size_t row_bytes_ = 0;
};

}  // namespace longvq
