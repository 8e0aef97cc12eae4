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
inline constexpr int kStateVersion = 1;

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
  void advance(int64_t tokens);    // after a run consumed `tokens` per sequence

  // The file format of docs/file-formats.md §3 (readable by the Python reference).
  // Written to PATH.tmp, then renamed: a failed write (disk full) leaves no partial file.
  // `extra_metadata` goes into the file's metadata beside the format entries (callers' notes).
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata = {}) const;
  static State load(const std::filesystem::path& path, const Model& model, Backend& backend);

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
