// Whole-sequence classification, shared by `longvq classify`, the server's /v1/classify and the
// Python binding: inputs of any lengths in, class logits out in the inputs' order.
//
// Inputs are batched by length (sorted, so a batch pads little) and run through one Session whose
// plan grows to the longest batch seen so far. A row's logits do not depend on its batch or its
// padding (bit for bit on the CPU: tests/serving/test_classifier.cpp), so any batching of a
// stream gives the same logits as classifying each input alone.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/longvq.h"

namespace longvq {

// One input: token ids (token-embedded models) or real values (pixel models, normalized).
struct ClassifierInput {
  std::span<const int32_t> tokens;
  std::span<const float> values;
  int64_t length() const { return static_cast<int64_t>(tokens.empty() ? values.size() : tokens.size()); }
};

struct ClassifierOptions {
  int64_t batch = 16;          // sequences per forward pass
  int64_t max_length = 65536;  // longer inputs are refused (std::invalid_argument naming the input)
  int threads = 0;             // CPU threads; 0 = all cores
};

class Classifier {
 public:
  // std::invalid_argument when the model is not a classifier.
  Classifier(std::shared_ptr<const Model> model, ClassifierOptions options = {});

  const Model& model() const { return *model_; }
  int64_t num_classes() const { return classes_; }
  const ClassifierOptions& options() const { return options_; }

  // Class logits of every input, [inputs.size() × C] in the inputs' order. Each input must be
  // of the model's kind (tokens or values), 1..max_length long, token ids within the vocabulary;
  // std::invalid_argument names the first that is not ("input #3: ...").
  std::vector<float> classify(std::span<const ClassifierInput> inputs);
  // The same into `logits` ([inputs.size() × C], caller's memory).
  void classify(std::span<const ClassifierInput> inputs, std::span<float> logits);

  // The session's plans so far (longvq classify -v).
  std::string describe_plans() const;

 private:
  void check(const ClassifierInput& in, size_t index) const;
  Session& session_for(int64_t batch, int64_t length);

  std::shared_ptr<const Model> model_;
  ClassifierOptions options_;
  int64_t classes_ = 0;
  bool real_ = false;
  std::optional<Session> session_;
  int64_t planned_batch_ = 0, planned_length_ = 0;
  std::vector<int32_t> tokens_, lengths_;
  std::vector<float> values_;
};

}  // namespace longvq
