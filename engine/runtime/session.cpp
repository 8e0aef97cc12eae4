#include <algorithm>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "engine/longvq.h"
#include "engine/runtime/planner.h"

namespace longvq {

Session::Session(std::shared_ptr<const Model> model, SessionOptions options)
    : model_(std::move(model)), options_(options),
      backend_(model_->device().make_backend(options.threads)) {
  if (options_.max_batch < 1 || options_.max_chunk < 1 || options_.max_length < 1)
    throw std::invalid_argument("session sizes (max_batch, max_chunk, max_length) must be >= 1");
}

void Session::check_batch(int64_t batch) const {
  if (batch < 1 || batch > options_.max_batch)
    throw std::invalid_argument(std::to_string(batch) + " sequences in one call; this session takes 1.." +
                                std::to_string(options_.max_batch) + " (raise max_batch)");
}

void Session::check_state(const State& state) const {
  if (&state.model() != model_.get())
    throw std::invalid_argument("this State was made for another Model (" + state.model().config().fingerprint() +
                                "); make states with this session (Session::new_state), or copy rows across "
                                "with State::set_row");
}

namespace {

// Rows that step in one call: in range, distinct, at most max_batch.
void check_rows(const State& state, std::span<const int32_t> rows, int64_t max_batch) {
  if (rows.empty()) throw std::invalid_argument("no rows given: name at least one row of the state to step");
  if (static_cast<int64_t>(rows.size()) > max_batch)
    throw std::invalid_argument(std::to_string(rows.size()) + " rows in one call; this session steps at most " +
                                std::to_string(max_batch) + " (raise max_batch)");
  std::vector<int32_t> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() < 0 || sorted.back() >= state.rows())
    throw std::out_of_range("row " + std::to_string(sorted.front() < 0 ? sorted.front() : sorted.back()) +
                            " is outside the state's rows 0.." + std::to_string(state.rows() - 1));
  if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end())
    throw std::invalid_argument("row " + std::to_string(*dup) + " is listed twice; each row steps once per call");
}

}  // namespace

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

void Session::step_rows(Executor& ex, State& state, std::span<const int32_t> rows, std::span<const int32_t> tokens,
                        int64_t len) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  ex.set_input("tokens", tokens.data(), batch, len);
  ex.set_input("state_rows", rows.data(), batch, len);
  ex.run(batch, len, &state);
  state.advance(rows, len);
  chunk_logits_.resize(ex.output_bytes("logits", batch, len) / sizeof(float));
  ex.get_output("logits", chunk_logits_.data(), batch, len);
  last_ = &ex, last_batch_ = batch, last_seq_ = len;
}

std::span<const float> Session::prefill(State& state, std::span<const RowTokens> rows, const LogitsSink& sink) {
  check_state(state);
  const int64_t V = model_->config().vocab_size;
  std::vector<int32_t> ids(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].row < 0 || rows[i].row >= state.rows())
      throw std::out_of_range("row " + std::to_string(rows[i].row) + " is outside the state's rows 0.." +
                              std::to_string(state.rows() - 1));
    ids[i] = static_cast<int32_t>(rows[i].row);
    if (rows[i].tokens.empty())
      throw std::invalid_argument("prefill of row " + std::to_string(rows[i].row) + " has no tokens; give each row >= 1");
    check_tokens(rows[i].tokens);
  }
  check_rows(state, ids, std::numeric_limits<int64_t>::max());
  for (size_t i = 0; i < rows.size(); ++i)  // before any chunk runs: a run that would overflow changes nothing
    state.check_advance(std::span<const int32_t>(&ids[i], 1), static_cast<int64_t>(rows[i].tokens.size()));
  Executor& ex = executor(GraphKind::prefill);
  std::vector<float> last(rows.size() * static_cast<size_t>(V));
  // Every pass runs all rows with tokens left for the same number of them (the fewest left,
  // at most max_chunk), in groups of max_batch. A row's result does not depend on the split.
  std::vector<int64_t> done(rows.size(), 0);
  std::vector<size_t> active;
  std::vector<int32_t> group;
  for (;;) {
    active.clear();
    int64_t len = options_.max_chunk;
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t left = static_cast<int64_t>(rows[i].tokens.size()) - done[i];
      if (left > 0) active.push_back(i), len = std::min(len, left);
    }
    if (active.empty()) break;
    for (size_t g0 = 0; g0 < active.size(); g0 += static_cast<size_t>(options_.max_batch)) {
      const size_t g1 = std::min(active.size(), g0 + static_cast<size_t>(options_.max_batch));
      group.clear();
      chunk_tokens_.clear();
      for (size_t a = g0; a < g1; ++a) {
        const size_t i = active[a];
        group.push_back(ids[i]);
        const auto t = rows[i].tokens.subspan(static_cast<size_t>(done[i]), static_cast<size_t>(len));
        chunk_tokens_.insert(chunk_tokens_.end(), t.begin(), t.end());
      }
      step_rows(ex, state, group, chunk_tokens_, len);
      for (size_t a = g0; a < g1; ++a) {
        const size_t i = active[a];
        const float* row_logits = chunk_logits_.data() + (a - g0) * static_cast<size_t>(len * V);
        if (sink) sink(i, done[i], std::span<const float>(row_logits, static_cast<size_t>(len * V)));
        std::copy_n(row_logits + (len - 1) * V, V, last.begin() + static_cast<int64_t>(i) * V);
      }
    }
    for (size_t i : active) done[i] += len;
  }
  logits_ = std::move(last);
  return logits_;
}

std::span<const float> Session::prefill(State& state, std::span<const int32_t> tokens) {
  const int64_t R = state.rows();
  if (tokens.empty() || tokens.size() % static_cast<size_t>(R) != 0)
    throw std::invalid_argument("prefill needs the same number (>= 1) of tokens for each of the " + std::to_string(R) +
                                " sequences");
  const size_t n = tokens.size() / static_cast<size_t>(R);
  const int64_t V = model_->config().vocab_size;
  std::vector<RowTokens> rows(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) rows[static_cast<size_t>(r)] = {r, tokens.subspan(static_cast<size_t>(r) * n, n)};
  std::vector<float> all(tokens.size() * static_cast<size_t>(V));
  prefill(state, rows, [&](size_t i, int64_t offset, std::span<const float> logits) {
    std::copy(logits.begin(), logits.end(), all.begin() + static_cast<int64_t>(i * n + static_cast<size_t>(offset)) * V);
  });
  logits_ = std::move(all);
  return logits_;
}

std::span<const float> Session::decode(State& state, std::span<const int32_t> rows, std::span<const int32_t> tokens) {
  check_state(state);
  if (tokens.size() != rows.size())
    throw std::invalid_argument("decode takes one token per stepping row: " + std::to_string(rows.size()) +
                                " rows but " + std::to_string(tokens.size()) + " tokens");
  check_rows(state, rows, options_.max_batch);
  check_tokens(tokens);
  state.check_advance(rows, 1);
  step_rows(executor(GraphKind::decode), state, rows, tokens, 1);
  logits_.assign(chunk_logits_.begin(), chunk_logits_.end());
  return logits_;
}

std::span<const float> Session::decode(State& state, std::span<const int32_t> tokens) {
  if (static_cast<int64_t>(tokens.size()) != state.rows())
    throw std::invalid_argument("decode takes one token per sequence: " + std::to_string(state.rows()) +
                                " expected, " + std::to_string(tokens.size()) + " given");
  all_rows_.resize(static_cast<size_t>(state.rows()));
  std::iota(all_rows_.begin(), all_rows_.end(), 0);
  return decode(state, all_rows_, tokens);
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
