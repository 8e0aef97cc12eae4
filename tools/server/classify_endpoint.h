// POST /v1/classify for classifier models: {"inputs": [{"text" | "tokens" | "pixels": ..., "id": any}]}
// → {"model", "results": [{"id", "label", "logits"}]}, in input order, batched up to -np inputs
// per graph run. One request runs at a time (the CPU is the bottleneck; more would only share it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "engine/serving/classifier.h"
#include "engine/text/tokenizer.h"

namespace longvq::server {

class ClassifyEndpoint {
 public:
  struct Limits {
    int threads = 0;
    int64_t batch = 16;
    int64_t max_length = 65536;
    int64_t max_inputs = 1024;
  };
  ClassifyEndpoint(std::shared_ptr<const Model> model, const Tokenizer& tok, Limits limits);

  // Throws ApiError for a bad request (400) or when shutting down (503).
  nlohmann::json handle(const std::string& body, bool draining);

 private:
  std::shared_ptr<const Model> model_;
  const Tokenizer& tok_;
  Limits limits_;
  std::mutex mu_;
  Classifier classifier_;  // guarded by mu_; its plan grows to the longest request seen
};

}  // namespace longvq::server
