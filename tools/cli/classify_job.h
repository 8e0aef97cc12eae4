// `longvq classify`'s work without its command line: examples in, one JSON line per example out,
// in input order, with accuracy and a confusion matrix on the way. Shared by the CLI (which
// streams a file through it, resumable) and the Python binding (Model.classify_jsonl, which
// python3 -m longvq.dask runs on each partition), so both write the same lines for one input.
//
// Memory is bounded by the window: add() queues examples until `window` are held, run()
// classifies them (sorted by length inside the window, batches of `batch`) and emits their lines.
//
// An output line: {"index": I, "id": ... (the input's), every other field of the input line
// (echoed as given), "label": predicted, "probs": [softmax], "logits": [...] (with logits),
// "target": T (when the input has a label)}.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/serving/classifier.h"
#include "tools/cli/inputs.h"

namespace longvq::cli {

struct ClassifyJobOptions {
  int64_t batch = 16;          // sequences per forward pass
  int64_t window = 0;          // examples held and sorted by length at once; 0 = 32 × batch
  int64_t max_length = 65536;  // longer inputs are an InputError naming the input
  int threads = 0;             // CPU threads; 0 = all cores
  bool logits = false;         // also write each input's raw class logits
};

// What a job has seen: counts, and with labels accuracy and the confusion matrix.
struct ClassifyTally {
  int64_t examples = 0, positions = 0, correct = 0, labelled = 0;
  std::vector<int64_t> confusion;  // [target × predicted], C × C
  void count(int64_t predicted, int64_t target, int64_t num_classes);
};

class ClassifyJob {
 public:
  ClassifyJob(std::shared_ptr<const Model> model, ClassifyJobOptions options);

  const Model& model() const { return *model_; }
  int64_t num_classes() const { return classifier_.num_classes(); }
  const ClassifyJobOptions& options() const { return options_; }
  const ClassifyTally& tally() const { return tally_; }
  ClassifyTally& tally() { return tally_; }  // --resume counts the lines already written
  std::string describe_plans() const { return classifier_.describe_plans(); }

  // Queues one example; `index` is its position in the whole input (the output's "index"),
  // `where` names it in errors ("data.jsonl:12"). Returns true when the window is full: run().
  bool add(Example e, int64_t index, std::string where);
  // Classifies the queued examples and appends their output lines, in the order added, to `out`.
  void run(std::string& out);
  bool empty() const { return queued_.empty(); }

 private:
  struct Queued {
    Example example;
    int64_t index;
    std::string where;
  };
  std::shared_ptr<const Model> model_;
  ClassifyJobOptions options_;
  Classifier classifier_;
  std::vector<Queued> queued_;
  ClassifyTally tally_;
};

// Classifies JSONL lines as `longvq classify FILE.jsonl` does (the same checks, messages and
// output lines): `lines` are consecutive lines of `source` starting at line `first_line` (1-based),
// and `first_index` is the index of their first example (blank lines are skipped and not counted).
// Returns one output line (without "\n") per example. Throws InputError naming source:line.
std::vector<std::string> classify_jsonl_lines(ClassifyJob& job, std::span<const std::string> lines,
                                              const std::string& source, int64_t first_line, int64_t first_index,
                                              const ReadOptions& read = {});

}  // namespace longvq::cli
