// longvq classify: label sequences with a classifier model; JSONL predictions out, accuracy and
// a confusion matrix when the inputs carry labels.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "tools/cli/commands.h"
#include "loaders/atomic_file.h"
#include "tools/cli/common.h"
#include "tools/cli/finite_check.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/classify_job.h"
#include "tools/cli/inputs.h"
#include "tools/cli/partial_output.h"
#include "tools/cli/process_setup.h"
#include "tools/cli/progress.h"
#include "tools/cli/stats.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

namespace {

struct ClassifyOptions {
  ModelFlags model;
  std::string input;
  std::string images, labels;
  bool no_labels = false;
  std::string format = "auto";
  int64_t batch = 16;
  std::string output;
  std::string metrics_json;
  bool logits = false;
  int64_t limit = -1;
  int64_t max_length = 65536;
  bool no_progress = false;
  std::string pixels = "same";
  int64_t max_input_bytes = kDefaultMaxInputBytes;
  bool resume = false;
};

ReadOptions read_options(const ClassifyOptions& o) {
  ReadOptions r;
  r.limit = o.limit;
  r.ignore_labels = o.no_labels;
  r.pixels = o.pixels == "same" ? kSamePixels : o.pixels == "any" ? kAnyPixels : std::stoll(o.pixels);
  r.max_input_bytes = o.max_input_bytes;
  return r;
}

// The examples of the input, streamed; `lines` (JSONL and TSV) must outlive the source.
std::unique_ptr<ExampleSource> open_inputs(const ClassifyOptions& o, const InputReader& reader,
                                           std::unique_ptr<InputLines>& lines) {
  const bool have_input = !o.input.empty();
  if (!have_input && o.images.empty()) {
    if (stdin_closed())
      throw UsageError("no input: stdin is closed; give a FILE (.jsonl, .tsv, *-images-idx3-ubyte) or --images FILE");
    if (is_terminal(STDIN_FILENO))
      throw UsageError("no input: give a FILE (.jsonl, .tsv, *-images-idx3-ubyte), --images FILE, or pipe JSONL on "
                       "stdin");
  }
  InputFormat fmt;
  if (!o.images.empty()) fmt = InputFormat::idx;
  else if (o.format == "jsonl") fmt = InputFormat::jsonl;
  else if (o.format == "tsv") fmt = InputFormat::tsv;
  else if (o.format == "idx") fmt = InputFormat::idx;
  else fmt = have_input ? detect_format(o.input) : InputFormat::jsonl;

  const ReadOptions options = read_options(o);
  if (fmt == InputFormat::idx) {
    const std::filesystem::path images = o.images.empty() ? o.input : o.images;
    if (images == "-") throw UsageError("IDX images cannot come from stdin; give the file");
    std::optional<std::filesystem::path> labels;
    if (!o.labels.empty()) {
      labels = o.labels;
    } else if (!o.no_labels) {
      std::filesystem::path beside = idx_labels_beside(images);
      std::error_code ec;
      if (!beside.empty() && std::filesystem::exists(beside, ec)) labels = beside;
    }
    if (o.no_labels) labels.reset();
    if (labels) std::fprintf(stderr, "labels: %s\n", labels->string().c_str());
    std::unique_ptr<ExampleSource> source = reader.idx(images, labels, options);
    // The model does not record the image size it was trained on: show the file's (--pixels checks it).
    std::fprintf(stderr, "images: %s of %lld × %lld pixels\n", group_digits(source->total).c_str(),
                 static_cast<long long>(source->rows), static_cast<long long>(source->cols));
    return source;
  }
  const std::string path = have_input ? o.input : "-";
  // A line at most --max-input-bytes: memory holds a window of inputs, never the whole file.
  lines = std::make_unique<InputLines>(path, o.max_input_bytes);
  auto next = [l = lines.get()](std::string& line) { return l->next(line); };
  return fmt == InputFormat::tsv ? reader.tsv(next, input_name(path), options)
                                 : reader.jsonl(next, input_name(path), options);
}

// --resume: an output line written by an earlier run, checked and counted. Returns its id.
std::string count_done_line(ClassifyJob& job, const std::string& line, int64_t row, const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    j = nullptr;
  }
  if (!j.is_object() || !j.contains("index") || j["index"] != row || !j.contains("label") ||
      !j["label"].is_number_integer())
    throw UsageError(file + ":" + std::to_string(row + 1) + " is not prediction #" + std::to_string(row) +
                     " of longvq classify, so the file cannot be resumed: delete it to start over");
  const int64_t target = j.contains("target") && j["target"].is_number_integer() ? j["target"].get<int64_t>() : -1;
  job.tally().count(j["label"].get<int64_t>(), target, job.num_classes());
  return j.contains("id") ? j["id"].dump() : "";
}

void print_metrics(const ClassifyOptions& o, const Model& model, const ClassifyJob& job, double seconds) {
  const ClassifyTally& t = job.tally();
  const int64_t N = t.examples, C = job.num_classes();
  nlohmann::ordered_json metrics = {{"model", model.dir().string()}, {"examples", N}, {"num_classes", C},
                                    {"seconds", seconds}, {"sequences_per_second", N / std::max(seconds, 1e-9)}};
  if (t.labelled > 0) {
    const double acc = static_cast<double>(t.correct) / static_cast<double>(t.labelled);
    std::fprintf(stderr, "accuracy: %.4f (%lld/%lld)\n", acc, static_cast<long long>(t.correct),
                 static_cast<long long>(t.labelled));
    std::fprintf(stderr, "confusion matrix (rows: target, columns: predicted):\n%6s", "");
    for (int64_t c = 0; c < C; ++c) std::fprintf(stderr, " %6lld", static_cast<long long>(c));
    std::fprintf(stderr, "\n");
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int64_t y = 0; y < C; ++y) {
      std::fprintf(stderr, "%6lld", static_cast<long long>(y));
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int64_t c = 0; c < C; ++c) {
        std::fprintf(stderr, " %6lld", static_cast<long long>(t.confusion[static_cast<size_t>(y * C + c)]));
        row.push_back(t.confusion[static_cast<size_t>(y * C + c)]);
      }
      std::fprintf(stderr, "\n");
      rows.push_back(row);
    }
    metrics["accuracy"] = acc;
    metrics["correct"] = t.correct;
    metrics["confusion"] = rows;
  }
  if (!o.metrics_json.empty()) write_file_atomically(o.metrics_json, metrics.dump(2) + "\n");
}

int run_classify(const ClassifyOptions& o) {
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"the input", o.input}, {"--images", o.images}, {"--labels", o.labels}};
  if (!o.output.empty()) check_output_path("-o", o.output, inputs);
  if (o.resume && o.output.empty()) throw UsageError("--resume continues an output file: give it with -o FILE");
  if (!o.metrics_json.empty()) {
    std::vector<std::pair<std::string, std::string>> taken = inputs;
    taken.emplace_back("-o", o.output);
    check_output_path("--metrics-json", o.metrics_json, taken);
    std::error_code ec;
    if (o.metrics_json == o.output || (!o.output.empty() && std::filesystem::equivalent(o.metrics_json, o.output, ec)))
      throw UsageError("--metrics-json " + o.metrics_json + " is also -o; give them different paths");
  }
  auto model = load_model(o.model);
  InputReader reader(model->config());  // refuses an LM
  std::unique_ptr<InputLines> lines;
  std::unique_ptr<ExampleSource> source = open_inputs(o, reader, lines);
  ClassifyJob job(model, {.batch = o.batch, .max_length = o.max_length, .threads = o.model.threads, .logits = o.logits});

  // Predictions in input order as they are made: to stdout, or to -o through OUT.partial.
  std::optional<PartialOutput> file;
  const std::string partial = o.output + ".partial";
  std::string last_done_id;
  if (!o.output.empty())
    file.emplace(o.output, o.resume, [&](const std::string& line, int64_t row) {
      last_done_id = count_done_line(job, line, row, partial);
    });
  const int64_t skip = file ? file->rows_done() : 0;
  if (o.resume) std::fprintf(stderr, "resuming: %s predictions already in %s\n", group_digits(skip).c_str(), partial.c_str());

  std::string out;
  auto flush = [&] {
    if (file) file->append(out);
    else if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
      throw std::runtime_error("could not write the output (stdout: " + std::string(std::strerror(errno)) + ")");
    out.clear();
  };
  // Progress in inputs when their count is known (IDX), else in bytes of the input file.
  const bool counted = source->total >= 0;
  const int64_t total = counted ? source->total : lines ? lines->size() : -1;
  Progress progress("classify", total, counted ? "seq" : "B",
                    total >= 0 && !o.no_progress && Progress::stderr_is_terminal());
  const int64_t t0 = now_ns();
  Example e;
  std::string where;
  int64_t index = 0;
  // A bad line or a failed write deep into a long input: what was done before it is kept.
  struct KeptNote {
    const std::optional<PartialOutput>& file;
    ~KeptNote() {
      if (std::uncaught_exceptions() && file && file->rows_written() > 0)
        std::fprintf(stderr, "note: the %s predictions made before this are kept in %s; rerun with --resume to "
                     "continue from there\n", group_digits(file->rows_written()).c_str(), file->partial().c_str());
    }
  } kept_note{file};
  while (source->next(e, where)) {
    if (index < skip) {  // done by the run being resumed; its last id must be this input's
      if (index == skip - 1 && !last_done_id.empty() && e.id != last_done_id)
        throw UsageError(where + " has id " + (e.id.empty() ? "none" : e.id) + ", but prediction #" +
                         std::to_string(index) + " in " + partial + " is for id " + last_done_id +
                         ": is this the input that run classified? Delete " + partial + " to start over");
      ++index;
      continue;
    }
    if (job.add(std::move(e), index++, where)) {
      job.run(out);
      flush();
      progress.update(counted ? index : lines->bytes_read());
    }
  }
  if (index < skip)
    throw UsageError(partial + " holds " + group_digits(skip) + " predictions, but the input has only " +
                     group_digits(index) + " inputs: is this the input that run classified? Delete " + partial +
                     " to start over");
  job.run(out);
  flush();
  const double seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  progress.finish();
  if (index == 0) throw std::runtime_error((o.input.empty() ? o.images : o.input) + ": no examples to classify");
  if (file) file->commit();  // stdout is checked once the command returns (main.cpp)

  const int64_t ran = index - skip;
  std::fprintf(stderr, "classified %lld sequences (%lld positions) in %.3f s: %.1f sequences/s, %.0f positions/s "
               "(batch %lld, %d threads)\n",
               static_cast<long long>(ran), static_cast<long long>(job.tally().positions), seconds,
               ran / std::max(seconds, 1e-9), static_cast<double>(job.tally().positions) / std::max(seconds, 1e-9),
               static_cast<long long>(o.batch), effective_threads(o.model.threads));
  print_metrics(o, *model, job, seconds);
  if (o.model.verbose) std::fprintf(stderr, "\n%s", job.describe_plans().c_str());
  return kExitOk;
}

}  // namespace

Command add_classify(CLI::App& root) {
  auto o = std::make_shared<ClassifyOptions>();
  CLI::App* app = root.add_subcommand("classify", "Label sequences with a classifier: JSONL, ListOps TSV or "
                                                  "Fashion-MNIST IDX in, JSONL predictions out");
  app->description(app->get_description() + ".\n\n" +
      "Classify sequences with a classifier model. Inputs (by extension, or --format):\n"
      "  .jsonl   one object per line: {\"tokens\": [ids]}, {\"text\": \"...\"} (the model's tokenizer) or\n"
      "           {\"pixels\": [0..255, ...]}, with an optional \"label\" and \"id\"\n"
      "  .tsv     ListOps: header 'Source<TAB>Target', then tokens, a tab and the label\n"
      "  IDX      Fashion-MNIST: --images FILE [--labels FILE], or an *-images-idx3-ubyte path (its\n"
      "           *-labels-idx1-ubyte beside it is found by name)\n"
      "  -        JSONL on stdin (also when no input is named and stdin is not a terminal)\n"
      "The input is streamed: a window of inputs (32 batches) is read, sorted by length, classified and\n"
      "written, so memory stays bounded however long the input is. Predictions come out in input order,\n"
      "one JSON object per line: {\"index\", \"id\" (the input's, if any), every other key of the JSONL line\n"
      "(copied as given), \"label\" (predicted class), \"probs\" (softmax of the logits), \"target\" (if known)}.\n"
      "Either all lines have a label or none. With labels, accuracy and a confusion matrix go to stderr\n"
      "(and to --metrics-json).\n"
      "With -o FILE, lines go to FILE.partial as they are made and FILE.partial becomes FILE at the end; if\n"
      "the job is killed, rerun it with --resume to keep what was done and classify only the rest.");
  add_model_flags(*app, o->model);
  auto* input = app->add_option("input", o->input, "Input file (.jsonl, .tsv, *-images-idx3-ubyte) or '-' for stdin")
                    ->type_name("FILE");
  auto* images = app->add_option("--images", o->images, "IDX image file (Fashion-MNIST)")->type_name("FILE");
  auto* labels = app->add_option("--labels", o->labels, "IDX label file for --images")->type_name("FILE");
  images->excludes(input);
  labels->needs(images);
  auto* no_labels = app->add_flag("--no-labels", o->no_labels, "Ignore labels in the input (predict only)");
  no_labels->excludes(labels);
  app->add_option("--format", o->format, "Input format: auto (by extension), jsonl, tsv or idx")
      ->capture_default_str()->check(CLI::IsMember({"auto", "jsonl", "tsv", "idx"}));
  app->add_option("-b,--batch", o->batch, "Sequences per forward pass")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_option("-o,--output", o->output, "Write the predictions (JSONL) to FILE instead of stdout")
      ->type_name("FILE");
  app->add_option("--metrics-json", o->metrics_json, "Write accuracy, confusion matrix and speed to FILE (JSON)")
      ->type_name("FILE");
  app->add_flag("--logits", o->logits, "Also print the raw class logits of each input");
  app->add_flag("--resume", o->resume,
                "Continue an interrupted -o FILE: keep the predictions in FILE.partial (or a finished FILE) and "
                "classify only the inputs after them");
  app->add_option("--limit", o->limit, "Classify only the first N inputs")->check(integer_in(0));
  app->add_option("--max-length", o->max_length, "Refuse inputs longer than this many positions")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_option("--pixels", o->pixels,
                  "Pixels per input for pixel models: N (e.g. 784 for 28 × 28 images), same (every input of a file "
                  "as many as its first) or any (sequences of any length); a model does not record its image size")
      ->type_name("N|same|any")->capture_default_str()
      ->check(CLI::Validator(
          [count = integer_in(1, kMaxSize)](std::string& s) {
            return s == "same" || s == "any" || count(s).empty() ? std::string()
                                                                  : "'" + s + "' is not same, any or a whole number "
                                                                    "from 1 to " + group_digits(kMaxSize);
          },
          "", "pixels"));
  add_max_input_flag(*app, o->max_input_bytes);
  app->add_flag("--no-progress", o->no_progress, "No progress bar (it is only drawn when stderr is a terminal)");
  app->footer(
      "Examples:\n"
      "  longvq classify -m models/listops tests/data/listops_test200.tsv -o pred.jsonl --metrics-json m.json\n"
      "  longvq classify -m models/fashion-seq tests/data/fashion_test1000-images-idx3-ubyte -b 32\n"
      "  longvq classify -m models/listops big.jsonl -o pred.jsonl --resume   # continues after a kill\n"
      "  echo '{\"tokens\": [3, 1, 4, 1, 5]}' | longvq classify -m tests/fixtures/cls_batchnorm_tokens");
  return {app, [o] { return run_classify(*o); }};
}

}  // namespace longvq::cli
