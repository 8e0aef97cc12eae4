// The public C++ API of the longvq engine.
//
//   auto model = longvq::Model::load("models/austen-lm");          // shared, read-only
//   longvq::Session session(model, {.max_batch = 16});              // one per thread
//   longvq::State state = session.new_state(64);                    // 64 conversation slots
//   auto last = session.prefill(state, {{.row = 3, .tokens = prompt}});  // row 3's last logits [1 × V]
//   auto logits = session.decode(state, rows, next_tokens);        // only `rows` step: [rows × V]
//   state.save_row("ctx.state", 3);                                 // park one conversation
//
// Ownership and threads: a Model is immutable after load and may be shared by any number of
// threads. A Session owns its backend (its threads or stream), its planned graphs and their
// arenas: use it from one thread at a time. A State belongs to the caller and is used by one
// Session call at a time. Spans returned by a Session stay valid until its next call.
//
// Batch invariance: a row's logits do not depend on which other rows step with it, nor on how
// its tokens are split into calls (bit for bit on the CPU; tests/engine/test_rows.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/runtime/executor.h"
#include "engine/runtime/longvq_graph.h"
#include "engine/runtime/model.h"
#include "engine/runtime/state.h"

namespace longvq {

struct SessionOptions {
  int64_t max_batch = 1;       // sequences per call (rows that step together; a State may hold more)
  int64_t max_chunk = 512;     // tokens per prefill graph run (longer prompts are chunked)
  int64_t max_length = 4096;   // longest whole sequence (forward / classify)
  bool layer_outputs = false;  // keep each layer's output and codes (parity tests, dumps)
  int threads = 0;             // CPU threads of this session's backend; 0 = all cores
};

// One row's tokens for a prefill.
struct RowTokens {
  int64_t row = 0;
  std::span<const int32_t> tokens;
};

// Receives the logits of a prefill as they are computed: rows[index] at positions
// offset .. offset + len − 1 of its tokens, [len × V] (valid during the call only).
using LogitsSink = std::function<void(size_t index, int64_t offset, std::span<const float> logits)>;

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, SessionOptions options = {});

  const Model& model() const { return *model_; }
  const SessionOptions& options() const { return options_; }
  Backend& backend() { return *backend_; }

  State new_state(int64_t rows = 1) { return State(*model_, *backend_, rows); }

  // Causal LM. Each listed row (distinct) consumes its own tokens (any count >= 1), chunked by
  // max_chunk and batched by max_batch; rows not listed keep their state bit for bit. Returns
  // each listed row's logits after its last token, [rows.size() × V]; `sink` (optional) gets
  // every position's logits on the way. Each row's position advances by its token count.
  std::span<const float> prefill(State& state, std::span<const RowTokens> rows, const LogitsSink& sink = {});
  // Every row of the state, the same n tokens each: tokens [R × n] row-major; returns the
  // logits of every position, [R × n × V].
  std::span<const float> prefill(State& state, std::span<const int32_t> tokens);
  // One token for each of `rows` (distinct, at most max_batch; tokens[i] for rows[i]): returns
  // [rows.size() × V]. Only those rows advance; the others are left bit for bit untouched.
  std::span<const float> decode(State& state, std::span<const int32_t> rows, std::span<const int32_t> tokens);
  // One token for every row of the state ([R]); returns [R × V].
  std::span<const float> decode(State& state, std::span<const int32_t> tokens);

  // Whole right-padded sequences, no state: [B × n] inputs with per-row lengths (each in
  // 1..n). Returns LM logits [B × n × V] or class logits [B × C].
  std::span<const float> forward(std::span<const int32_t> tokens, std::span<const int32_t> lengths, int64_t n);
  std::span<const float> forward(std::span<const float> inputs, std::span<const int32_t> lengths, int64_t n);

  // With layer_outputs: layer i's output [B × n × d] or codes [B × n] from the last forward,
  // prefill chunk or decode step.
  std::vector<float> layer_output(int layer) const;
  std::vector<int32_t> layer_codes(int layer) const;

  // The memory plan of each graph this session has built so far.
  std::string describe_plans() const;

 private:
  Executor& executor(GraphKind kind);
  void check_batch(int64_t batch) const;
  void check_tokens(std::span<const int32_t> tokens) const;
  void check_state(const State& state) const;
  // Runs `rows` (state rows, distinct and in range) for `len` tokens each from `tokens`
  // ([rows × len]) and leaves the logits [rows × len × V] in chunk_logits_.
  void step_rows(Executor& ex, State& state, std::span<const int32_t> rows, std::span<const int32_t> tokens, int64_t len);
  std::span<const float> run_sequence(const void* inputs, std::span<const int32_t> lengths, int64_t batch, int64_t n);

  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  std::unique_ptr<Backend> backend_;
  std::map<GraphKind, std::unique_ptr<Executor>> executors_;
  Executor* last_ = nullptr;
  int64_t last_batch_ = 0, last_seq_ = 0;
  std::vector<float> logits_, chunk_logits_;
  std::vector<int32_t> chunk_tokens_, all_rows_;
};

}  // namespace longvq
