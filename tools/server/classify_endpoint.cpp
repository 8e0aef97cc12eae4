#include "tools/server/classify_endpoint.h"

#include <algorithm>

#include "tools/server/api.h"

namespace longvq::server {

ClassifyEndpoint::ClassifyEndpoint(std::shared_ptr<const Model> model, const Tokenizer& tok, Limits limits)
    : model_(std::move(model)), tok_(tok), limits_(limits) {}

nlohmann::json ClassifyEndpoint::handle(const std::string& body, bool draining) {
  if (draining) throw ApiError(503, "the server is shutting down; retry on another replica");
  const ModelConfig& c = model_->config();
  const std::vector<ClassifyInput> inputs = parse_classify(body, tok_, c, limits_.max_inputs, limits_.max_length);
  const bool real = c.embedding.kind == EmbeddingConfig::Kind::real;
  const int64_t C = c.classifier->num_classes;
  nlohmann::json results = nlohmann::json::array();
  std::lock_guard lock(mu_);
  for (size_t b0 = 0; b0 < inputs.size(); b0 += static_cast<size_t>(limits_.batch)) {
    const size_t b1 = std::min(inputs.size(), b0 + static_cast<size_t>(limits_.batch));
    int64_t n = 0;
    for (size_t i = b0; i < b1; ++i) n = std::max<int64_t>(n, static_cast<int64_t>(real ? inputs[i].values.size() : inputs[i].tokens.size()));
    const int64_t B = static_cast<int64_t>(b1 - b0);
    // Sized to this batch: one graph plan per request, no arena for lengths never asked for.
    Session session(model_, {.max_batch = B, .max_length = n, .threads = limits_.threads});
    std::vector<int32_t> lengths, tokens(static_cast<size_t>(B * n), 0);
    std::vector<float> values(static_cast<size_t>(B * n), 0.0f);
    for (size_t i = b0; i < b1; ++i) {
      const size_t row = (i - b0) * static_cast<size_t>(n);
      if (real) std::copy(inputs[i].values.begin(), inputs[i].values.end(), values.begin() + static_cast<int64_t>(row));
      else std::copy(inputs[i].tokens.begin(), inputs[i].tokens.end(), tokens.begin() + static_cast<int64_t>(row));
      lengths.push_back(static_cast<int32_t>(real ? inputs[i].values.size() : inputs[i].tokens.size()));
    }
    std::span<const float> logits = real ? session.forward(values, lengths, n) : session.forward(tokens, lengths, n);
    for (size_t i = b0; i < b1; ++i) {
      const auto row = logits.subspan((i - b0) * static_cast<size_t>(C), static_cast<size_t>(C));
      const int64_t label = std::max_element(row.begin(), row.end()) - row.begin();
      results.push_back({{"id", inputs[i].id}, {"label", label}, {"logits", std::vector<float>(row.begin(), row.end())}});
    }
  }
  std::string name = model_->dir().filename().string();
  if (name.empty()) name = model_->dir().parent_path().filename().string();
  return {{"object", "classification"}, {"model", name}, {"results", results}};
}

}  // namespace longvq::server
