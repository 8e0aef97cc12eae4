#include <sstream>
#include <stdexcept>

#include "engine/longvq.h"
#include "engine/runtime/planner.h"

namespace longvq {

Session::Session(std::shared_ptr<const Model> model, SessionOptions options)
    : model_(std::move(model)), options_(options),
      backend_(make_backend(model_->options().backend, model_->options().threads)) {
  if (options_.max_batch < 1 || options_.max_chunk < 1 || options_.max_length < 1)
    throw std::invalid_argument("session sizes (max_batch, max_chunk, max_length) must be >= 1");
}

void Session::check_batch(int64_t batch) const {
  if (batch < 1 || batch > options_.max_batch)
    throw std::invalid_argument(std::to_string(batch) + " sequences in one call; this session takes 1.." +
                                std::to_string(options_.max_batch) + " (raise max_batch)");
}

void Session::check_tokens(std::span<const int32_t> tokens) const {
  const int64_t V = model_->config().vocab_size;
  for (int32_t t : tokens)
    if (t < 0 || t >= V)
      throw std::invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary 0.." +
                                  std::to_string(V - 1));
}

Executor& Session::executor(GraphKind kind) {
  auto it = executors_.find(kind);
  if (it == executors_.end()) {
    int64_t max_seq = kind == GraphKind::prefill ? options_.max_chunk
                      : kind == GraphKind::decode ? 1 : options_.max_length;
    Graph g = build_graph(*model_, kind, options_.max_batch, max_seq, {options_.layer_outputs});
    it = executors_.emplace(kind, std::make_unique<Executor>(*model_, *backend_, std::move(g))).first;
  }
  return *it->second;
}

std::span<const float> Session::prefill(State& state, std::span<const int32_t> tokens) {
  const int64_t batch = state.batch();
  check_batch(batch);
  if (tokens.empty() || tokens.size() % static_cast<size_t>(batch) != 0)
    throw std::invalid_argument("prefill needs the same number (>= 1) of tokens for each of the " +
                                std::to_string(batch) + " sequences");
  const int64_t n = static_cast<int64_t>(tokens.size()) / batch;
  const int64_t V = model_->config().vocab_size;
  check_tokens(tokens);
  state.check_advance(n);  // before any chunk runs: a run that would overflow a position changes nothing
  Executor& ex = executor(GraphKind::prefill);
  logits_.assign(static_cast<size_t>(batch * n * V), 0.0f);
  std::vector<int32_t> chunk;
  std::vector<float> chunk_logits;
  for (int64_t start = 0; start < n; start += options_.max_chunk) {
    const int64_t len = std::min(options_.max_chunk, n - start);
    chunk.resize(static_cast<size_t>(batch * len));
    for (int64_t b = 0; b < batch; ++b)
      std::copy_n(tokens.begin() + b * n + start, len, chunk.begin() + b * len);
    ex.set_input("tokens", chunk.data(), batch, len);
    ex.run(batch, len, &state);
    state.advance(len);
    chunk_logits.resize(static_cast<size_t>(batch * len * V));
    ex.get_output("logits", chunk_logits.data(), batch, len);
    for (int64_t b = 0; b < batch; ++b)
      std::copy_n(chunk_logits.begin() + b * len * V, len * V, logits_.begin() + (b * n + start) * V);
    last_ = &ex, last_batch_ = batch, last_seq_ = len;
  }
  return logits_;
}

std::span<const float> Session::decode(State& state, std::span<const int32_t> tokens) {
  const int64_t batch = state.batch();
  if (static_cast<int64_t>(tokens.size()) != batch)
    throw std::invalid_argument("decode takes one token per sequence: " + std::to_string(batch) + " expected, " +
                                std::to_string(tokens.size()) + " given");
  check_batch(batch);
  check_tokens(tokens);
  state.check_advance(1);
  Executor& ex = executor(GraphKind::decode);
  ex.set_input("tokens", tokens.data(), batch, 1);
  ex.run(batch, 1, &state);
  state.advance(1);
  logits_.resize(static_cast<size_t>(batch * model_->config().vocab_size));
  ex.get_output("logits", logits_.data(), batch, 1);
  last_ = &ex, last_batch_ = batch, last_seq_ = 1;
  return logits_;
}

std::span<const float> Session::forward(std::span<const int32_t> tokens, std::span<const int32_t> lengths, int64_t n) {
  if (model_->config().embedding.kind != EmbeddingConfig::Kind::token)
    throw std::invalid_argument("this model takes real-valued inputs (pixels), not token ids");
  check_tokens(tokens);
  return run_sequence(tokens.data(), lengths, static_cast<int64_t>(lengths.size()), n);
}

std::span<const float> Session::forward(std::span<const float> inputs, std::span<const int32_t> lengths, int64_t n) {
  if (model_->config().embedding.kind != EmbeddingConfig::Kind::real)
    throw std::invalid_argument("this model takes token ids, not real-valued inputs");
  return run_sequence(inputs.data(), lengths, static_cast<int64_t>(lengths.size()), n);
}

std::span<const float> Session::run_sequence(const void* inputs, std::span<const int32_t> lengths, int64_t batch,
                                             int64_t n) {
  check_batch(batch);
  if (n < 1 || n > options_.max_length)
    throw std::invalid_argument("sequence length " + std::to_string(n) + " is outside 1.." +
                                std::to_string(options_.max_length) + " (raise max_length)");
  for (int32_t len : lengths)
    if (len < 1 || len > n)
      throw std::invalid_argument("each length must be in 1.." + std::to_string(n) + ", got " + std::to_string(len));
  Executor& ex = executor(GraphKind::sequence);
  const bool tokens = model_->config().embedding.kind == EmbeddingConfig::Kind::token;
  ex.set_input(tokens ? "tokens" : "inputs", inputs, batch, n);
  ex.set_input("lengths", lengths.data(), batch, n);
  ex.run(batch, n, nullptr);
  logits_.resize(ex.output_bytes("logits", batch, n) / sizeof(float));
  ex.get_output("logits", logits_.data(), batch, n);
  last_ = &ex, last_batch_ = batch, last_seq_ = n;
  return logits_;
}

std::vector<float> Session::layer_output(int layer) const {
  if (!last_ || !options_.layer_outputs) throw std::logic_error("layer outputs need layer_outputs and a run");
  const std::string name = "layers." + std::to_string(layer) + ".output";
  std::vector<float> out(last_->output_bytes(name, last_batch_, last_seq_) / sizeof(float));
  last_->get_output(name, out.data(), last_batch_, last_seq_);
  return out;
}

std::vector<int32_t> Session::layer_codes(int layer) const {
  if (!last_ || !options_.layer_outputs) throw std::logic_error("layer codes need layer_outputs and a run");
  const std::string name = "layers." + std::to_string(layer) + ".codes";
  std::vector<int32_t> out(last_->output_bytes(name, last_batch_, last_seq_) / sizeof(int32_t));
  last_->get_output(name, out.data(), last_batch_, last_seq_);
  return out;
}

std::string Session::describe_plans() const {
  std::ostringstream s;
  for (const auto& [kind, ex] : executors_) {
    s << "graph " << graph_kind_name(kind) << " (batch <= " << ex->graph().max_batch() << ", length <= "
      << ex->graph().max_seq() << ")\n";
    print_plan(ex->graph(), ex->plan(), s);
  }
  return s.str();
}

}  // namespace longvq
