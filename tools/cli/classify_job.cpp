#include "tools/cli/classify_job.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"

namespace longvq::cli {

namespace {

std::string number_list(const float* x, int64_t n, const char* fmt) {
  std::string s = "[";
  for (int64_t i = 0; i < n; ++i) {
    if (i) s += ',';
    s += strf(fmt, static_cast<double>(x[i]));
  }
  return s + "]";
}

}  // namespace

void ClassifyTally::count(int64_t predicted, int64_t target, int64_t num_classes) {
  ++examples;
  if (target < 0) return;
  if (confusion.empty()) confusion.assign(static_cast<size_t>(num_classes * num_classes), 0);
  ++labelled;
  correct += predicted == target;
  ++confusion[static_cast<size_t>(target * num_classes + predicted)];
}

ClassifyJob::ClassifyJob(std::shared_ptr<const Model> model, ClassifyJobOptions options)
    : model_(std::move(model)),
      options_(options),
      classifier_(model_, {.batch = options.batch, .max_length = options.max_length, .threads = options.threads}) {
  if (options_.window <= 0) options_.window = 32 * options_.batch;
}

bool ClassifyJob::add(Example e, int64_t index, std::string where) {
  if (e.length() > options_.max_length)
    throw UsageError(where + ": the input has " + group_digits(e.length()) + " positions, more than --max-length " +
                     group_digits(options_.max_length) + "; raise --max-length (memory grows with batch × length; "
                     "lower --batch with it) or shorten the input");
  queued_.push_back({std::move(e), index, std::move(where)});
  return static_cast<int64_t>(queued_.size()) >= options_.window;
}

void ClassifyJob::run(std::string& out) {
  if (queued_.empty()) return;
  const int64_t C = num_classes();
  std::vector<ClassifierInput> inputs;
  inputs.reserve(queued_.size());
  int64_t longest = 0;
  for (const Queued& q : queued_) {
    inputs.push_back({q.example.tokens, q.example.values});
    longest = std::max(longest, q.example.length());
  }
  const int64_t batch = std::min<int64_t>(options_.batch, static_cast<int64_t>(queued_.size()));
  check_activation_memory(model_->config(), batch, longest,
                          "a batch of " + group_digits(batch) + " inputs of " + group_digits(longest) +
                              " positions (-b " + group_digits(options_.batch) + ")");
  const std::vector<float> logits = classifier_.classify(inputs);
  std::vector<float> probs(static_cast<size_t>(C));
  for (size_t i = 0; i < queued_.size(); ++i) {
    const Queued& q = queued_[i];
    const float* l = logits.data() + i * static_cast<size_t>(C);
    if (!std::all_of(l, l + C, [](float v) { return std::isfinite(v); })) {
      // Names the layer where the values went bad (a damaged model, not a bad input).
      const int32_t len = static_cast<int32_t>(q.example.length());
      check_class_logits(model_, std::span<const float>(l, static_cast<size_t>(C)), q.example.tokens, q.example.values,
                         std::span<const int32_t>(&len, 1), len, q.where);
    }
    const float top = *std::max_element(l, l + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(l[c]) - top);
    for (int64_t c = 0; c < C; ++c)
      probs[static_cast<size_t>(c)] = static_cast<float>(std::exp(static_cast<double>(l[c]) - top) / sum);
    const int64_t pred = std::max_element(l, l + C) - l;
    const Example& e = q.example;
    out += "{\"index\":" + std::to_string(q.index) + (e.id.empty() ? "" : ",\"id\":" + e.id) +
           (e.echo.empty() ? "" : "," + e.echo) + ",\"label\":" + std::to_string(pred) +
           ",\"probs\":" + number_list(probs.data(), C, "%.6g");
    if (options_.logits) out += ",\"logits\":" + number_list(l, C, "%.9g");
    if (e.label >= 0) out += ",\"target\":" + std::to_string(e.label);
    out += "}\n";
    tally_.count(pred, e.label, C);
    tally_.positions += e.length();
  }
  queued_.clear();
}

std::vector<std::string> classify_jsonl_lines(ClassifyJob& job, std::span<const std::string> lines,
                                              const std::string& source, int64_t first_line, int64_t first_index,
                                              const ReadOptions& read) {
  const InputReader reader(job.model().config());
  size_t next = 0;
  auto source_lines = [&](std::string& line) {
    if (next >= lines.size()) return false;
    line = lines[next++];
    return true;
  };
  ReadOptions options = read;
  options.first_line = first_line;  // messages name the line in the whole input
  std::unique_ptr<ExampleSource> examples = reader.jsonl(source_lines, source, options);
  std::string out;
  Example e;
  std::string where;
  int64_t index = first_index;
  while (examples->next(e, where))
    if (job.add(std::move(e), index++, where)) job.run(out);
  job.run(out);
  std::vector<std::string> result;
  for (size_t at = 0; at < out.size();) {
    const size_t nl = out.find('\n', at);
    result.push_back(out.substr(at, nl - at));
    at = nl + 1;
  }
  return result;
}

}  // namespace longvq::cli
