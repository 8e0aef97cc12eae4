// The public C++ API of the longvq engine.
//
//   auto model = longvq::Model::load("models/austen-lm");          // shared, read-only
//   longvq::Session session(model, {.max_batch = 1});               // one per thread
//   longvq::State state = session.new_state(1);                     // one per conversation
//   auto logits = session.prefill(state, prompt_tokens);            // [B × n × V]
//   logits = session.decode(state, next_tokens);                    // [B × V]
//   state.save("ctx.state");                                        // resume later
//
// Ownership and threads: a Model is immutable after load and may be shared by any number of
// threads. A Session owns its backend handle, its planned graphs and their arenas: use it from
// one thread at a time. A State belongs to the caller and is used by one Session call at a time.
// Spans returned by a Session stay valid until its next call.
#pragma once

#include <cstdint>
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
  int64_t max_batch = 1;       // sequences per call
  int64_t max_chunk = 512;     // tokens per prefill graph run (longer prompts are chunked)
  int64_t max_length = 4096;   // longest whole sequence (forward / classify)
  bool layer_outputs = false;  // keep each layer's output and codes (parity tests, dumps)
};

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, SessionOptions options = {});

  const Model& model() const { return *model_; }
  const SessionOptions& options() const { return options_; }
  Backend& backend() { return *backend_; }

  State new_state(int64_t batch = 1) { return State(*model_, *backend_, batch); }

  // Causal LM. tokens are [B × n] row-major for the state's B sequences; returns the logits of
  // every position, [B × n × V]. The state advances by n.
  std::span<const float> prefill(State& state, std::span<const int32_t> tokens);
  // One token per sequence ([B]); returns [B × V]. The state advances by 1.
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
  std::span<const float> run_sequence(const void* inputs, std::span<const int32_t> lengths, int64_t batch, int64_t n);

  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  std::unique_ptr<Backend> backend_;
  std::map<GraphKind, std::unique_ptr<Executor>> executors_;
  Executor* last_ = nullptr;
  int64_t last_batch_ = 0, last_seq_ = 0;
  std::vector<float> logits_;
};

}  // namespace longvq
