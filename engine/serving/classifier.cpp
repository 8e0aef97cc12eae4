#include "engine/serving/classifier.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>

namespace longvq {

Classifier::Classifier(std::shared_ptr<const Model> model, ClassifierOptions options)
    : model_(std::move(model)), options_(options) {
  const ModelConfig& c = model_->config();
  if (c.task != ModelConfig::Task::classify || !c.classifier)
    throw std::invalid_argument("this model is a language model ('lm'); classification needs a classifier model");
  if (options_.batch < 1) throw std::invalid_argument("the batch must be at least 1");
  if (options_.max_length < 1) throw std::invalid_argument("the longest input must be at least 1");
  classes_ = c.classifier->num_classes;
  real_ = c.embedding.kind == EmbeddingConfig::Kind::real;
}

void Classifier::check(const ClassifierInput& in, size_t index) const {
  const std::string where = "input #" + std::to_string(index);
  if (real_ && !in.tokens.empty())
    throw std::invalid_argument(where + ": token ids given, but this model takes real values (pixels)");
  if (!real_ && !in.values.empty())
    throw std::invalid_argument(where + ": real values given, but this model takes token ids");
  const int64_t n = in.length();
  if (n < 1) throw std::invalid_argument(where + " is empty; a sequence needs at least one position");
  if (n > options_.max_length)
    throw std::invalid_argument(where + " has " + std::to_string(n) + " positions, more than the longest allowed (" +
                                std::to_string(options_.max_length) + "); raise max_length or shorten the input");
  const int64_t V = model_->config().vocab_size;
  for (size_t i = 0; i < in.tokens.size(); ++i)
    if (in.tokens[i] < 0 || in.tokens[i] >= V)
      throw std::invalid_argument(where + ": token id " + std::to_string(in.tokens[i]) + " at position " +
                                  std::to_string(i) + " is outside the vocabulary 0.." + std::to_string(V - 1));
}

Session& Classifier::session_for(int64_t batch, int64_t length) {
  if (!session_ || batch > planned_batch_ || length > planned_length_) {
    // Grow in powers of two: a stream of slowly lengthening inputs re-plans a few times, not each batch.
    int64_t n = 1;
    while (n < length) n *= 2;
    planned_length_ = std::max(planned_length_, std::min(n, options_.max_length));
    planned_batch_ = std::max(planned_batch_, batch);
    session_.reset();  // the old plan's arenas go before the new one's are made
    session_.emplace(model_, SessionOptions{.max_batch = planned_batch_, .max_length = planned_length_,
                                            .threads = options_.threads});
  }
  return *session_;
}

std::vector<float> Classifier::classify(std::span<const ClassifierInput> inputs) {
  std::vector<float> logits(inputs.size() * static_cast<size_t>(classes_));
  classify(inputs, logits);
  return logits;
}

void Classifier::classify(std::span<const ClassifierInput> inputs, std::span<float> logits) {
  const int64_t N = static_cast<int64_t>(inputs.size()), C = classes_;
  if (static_cast<int64_t>(logits.size()) != N * C)
    throw std::invalid_argument("the logits buffer holds " + std::to_string(logits.size()) + " floats, not " +
                                std::to_string(N) + " inputs × " + std::to_string(C) + " classes");
  for (size_t i = 0; i < inputs.size(); ++i) check(inputs[i], i);
  // Batches of similar lengths: little padding. Results go back to input order.
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return inputs[static_cast<size_t>(a)].length() < inputs[static_cast<size_t>(b)].length();
  });
  for (int64_t a = 0; a < N; a += options_.batch) {
    const int64_t B = std::min(options_.batch, N - a);
    const auto at = [&](int64_t b) -> const ClassifierInput& { return inputs[static_cast<size_t>(order[static_cast<size_t>(a + b)])]; };
    const int64_t n = at(B - 1).length();
    Session& session = session_for(std::min(options_.batch, N), n);
    lengths_.assign(static_cast<size_t>(B), 0);
    if (real_) values_.assign(static_cast<size_t>(B * n), 0.0f);
    else tokens_.assign(static_cast<size_t>(B * n), 0);
    for (int64_t b = 0; b < B; ++b) {
      const ClassifierInput& in = at(b);
      lengths_[static_cast<size_t>(b)] = static_cast<int32_t>(in.length());
      if (real_) std::copy(in.values.begin(), in.values.end(), values_.begin() + b * n);
      else std::copy(in.tokens.begin(), in.tokens.end(), tokens_.begin() + b * n);
    }
    std::span<const float> out = real_ ? session.forward(values_, lengths_, n) : session.forward(tokens_, lengths_, n);
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(out.begin() + b * C, C, logits.begin() + order[static_cast<size_t>(a + b)] * C);
  }
}

std::string Classifier::describe_plans() const { return session_ ? session_->describe_plans() : std::string(); }

}  // namespace longvq
