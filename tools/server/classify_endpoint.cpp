#include "tools/server/classify_endpoint.h"

#include <algorithm>

#include "tools/server/api.h"

namespace longvq::server {

ClassifyEndpoint::ClassifyEndpoint(std::shared_ptr<const Model> model, const Tokenizer& tok, Limits limits)
    : model_(std::move(model)),
      tok_(tok),
      limits_(limits),
      classifier_(model_, {.batch = limits.batch, .max_length = limits.max_length, .threads = limits.threads}) {}

nlohmann::json ClassifyEndpoint::handle(const std::string& body, bool draining) {
  if (draining) throw ApiError(503, "the server is shutting down; retry on another replica");
  const std::vector<ClassifyInput> inputs = parse_classify(body, tok_, model_->config(), limits_.max_inputs, limits_.max_length);
  std::vector<ClassifierInput> batch;
  for (const ClassifyInput& in : inputs) batch.push_back({in.tokens, in.values});
  std::vector<float> logits;
  {
    std::lock_guard lock(mu_);
    logits = classifier_.classify(batch);
  }
  const size_t C = static_cast<size_t>(classifier_.num_classes());
  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::span<const float> row(logits.data() + i * C, C);
    const int64_t label = std::max_element(row.begin(), row.end()) - row.begin();
    results.push_back({{"id", inputs[i].id}, {"label", label}, {"logits", std::vector<float>(row.begin(), row.end())}});
  }
  std::string name = model_->dir().filename().string();
  if (name.empty()) name = model_->dir().parent_path().filename().string();
  return {{"object", "classification"}, {"model", name}, {"results", results}};
}

}  // namespace longvq::server
