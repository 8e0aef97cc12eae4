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
#include "tools/cli/inputs.h"
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
};

ReadOptions read_options(const ClassifyOptions& o) {
  ReadOptions r;
  r.limit = o.limit;
  r.ignore_labels = o.no_labels;
  r.pixels = o.pixels == "same" ? kSamePixels : o.pixels == "any" ? kAnyPixels : std::stoll(o.pixels);
  r.max_input_bytes = o.max_input_bytes;
  return r;
}

Dataset read_inputs(const ClassifyOptions& o, const InputReader& reader) {
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
    Dataset ds = reader.read_idx(images, labels, options);
    // The model does not record the image size it was trained on: show the file's (--pixels checks it).
    std::fprintf(stderr, "images: %s of %lld × %lld pixels\n", group_digits(static_cast<int64_t>(ds.examples.size())).c_str(),
                 static_cast<long long>(ds.rows), static_cast<long long>(ds.cols));
    return ds;
  }
  const std::string path = have_input ? o.input : "-";
  std::istringstream in(read_input(path, o.max_input_bytes));  // the input whole: capped, then parsed
  return fmt == InputFormat::tsv ? reader.read_tsv(in, input_name(path), options)
                                 : reader.read_jsonl(in, input_name(path), options);
}

std::string number_list(const float* x, int64_t n, const char* fmt) {
  std::string s = "[";
  for (int64_t i = 0; i < n; ++i) {
    if (i) s += ',';
    s += strf(fmt, static_cast<double>(x[i]));
  }
  return s + "]";
}

int run_classify(const ClassifyOptions& o) {
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"the input", o.input}, {"--images", o.images}, {"--labels", o.labels}};
  if (!o.output.empty()) check_output_path("-o", o.output, inputs);
  if (!o.metrics_json.empty()) {
    std::vector<std::pair<std::string, std::string>> taken = inputs;
    taken.emplace_back("-o", o.output);
    check_output_path("--metrics-json", o.metrics_json, taken);
    std::error_code ec;
    if (o.metrics_json == o.output || (!o.output.empty() && std::filesystem::equivalent(o.metrics_json, o.output, ec)))
      throw UsageError("--metrics-json " + o.metrics_json + " is also -o; give them different paths");
  }
  auto model = load_model(o.model);
  const ModelConfig& cfg = model->config();
  InputReader reader(cfg);  // refuses an LM
  Dataset ds = read_inputs(o, reader);
  const int64_t N = static_cast<int64_t>(ds.examples.size());
  if (N == 0) throw std::runtime_error((o.input.empty() ? o.images : o.input) + ": no examples to classify");
  const int64_t C = cfg.classifier->num_classes;
  const bool real = cfg.embedding.kind == EmbeddingConfig::Kind::real;

  // Batches of similar lengths: little padding. Results go back to input order.
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ds.examples[static_cast<size_t>(a)].length() < ds.examples[static_cast<size_t>(b)].length();
  });
  const int64_t longest = ds.examples[static_cast<size_t>(order.back())].length();
  if (longest > o.max_length)
    throw UsageError("input #" + std::to_string(order.back()) + " has " + group_digits(longest) +
                     " positions, more than --max-length " + group_digits(o.max_length) +
                     "; raise --max-length (memory grows with batch × length; lower --batch with it) or shorten "
                     "the input");
  SessionOptions so;
  so.max_batch = std::min(o.batch, N);
  so.max_length = longest;
  so.threads = o.model.threads;
  check_activation_memory(cfg, so.max_batch, longest,
                          "a batch of " + group_digits(so.max_batch) + " inputs of " + group_digits(longest) +
                              " positions (-b " + group_digits(o.batch) + ")");
  Session session(model, so);

  std::vector<float> logits(static_cast<size_t>(N * C));
  std::vector<int32_t> tokens, lengths;
  std::vector<float> values;
  Progress progress("classify", N, "seq", !o.no_progress && Progress::stderr_is_terminal());
  int64_t positions = 0;
  const int64_t t0 = now_ns();
  for (int64_t a = 0; a < N; a += so.max_batch) {
    const int64_t B = std::min(so.max_batch, N - a);
    const int64_t n = ds.examples[static_cast<size_t>(order[static_cast<size_t>(a + B - 1)])].length();
    lengths.assign(static_cast<size_t>(B), 0);
    if (real) values.assign(static_cast<size_t>(B * n), 0.0f);
    else tokens.assign(static_cast<size_t>(B * n), 0);
    for (int64_t b = 0; b < B; ++b) {
      const Example& e = ds.examples[static_cast<size_t>(order[static_cast<size_t>(a + b)])];
      lengths[static_cast<size_t>(b)] = static_cast<int32_t>(e.length());
      positions += e.length();
      if (real) std::copy(e.values.begin(), e.values.end(), values.begin() + b * n);
      else std::copy(e.tokens.begin(), e.tokens.end(), tokens.begin() + b * n);
    }
    std::span<const float> out = real ? session.forward(values, lengths, n) : session.forward(tokens, lengths, n);
    check_class_logits(model, out, real ? std::span<const int32_t>() : std::span<const int32_t>(tokens),
                       real ? std::span<const float>(values) : std::span<const float>(), lengths, n,
                       "input #" + std::to_string(order[static_cast<size_t>(a)]) + "'s batch");
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(out.begin() + b * C, C, logits.begin() + order[static_cast<size_t>(a + b)] * C);
    progress.update(a + B);
  }
  const double seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  progress.finish();

  // Predictions, in input order: to stdout, or whole or not at all to -o (loaders/atomic_file.h).
  std::optional<AtomicFile> file;
  if (!o.output.empty()) file.emplace(o.output);
  std::string out;
  auto flush = [&](bool last) {
    if (!last && out.size() < (1u << 20)) return;
    if (file) file->write(out);
    else if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size())
      throw std::runtime_error("could not write the output (stdout: " + std::string(std::strerror(errno)) + ")");
    out.clear();
  };
  std::vector<int64_t> confusion(static_cast<size_t>(C * C), 0);
  int64_t correct = 0;
  std::vector<float> probs(static_cast<size_t>(C));
  for (int64_t i = 0; i < N; ++i) {
    const float* l = logits.data() + i * C;
    const float top = *std::max_element(l, l + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(l[c]) - top);
    for (int64_t c = 0; c < C; ++c) probs[static_cast<size_t>(c)] = static_cast<float>(std::exp(static_cast<double>(l[c]) - top) / sum);
    const int64_t pred = std::max_element(l, l + C) - l;
    const Example& e = ds.examples[static_cast<size_t>(i)];
    out += "{\"index\":" + std::to_string(i) + (e.id.empty() ? "" : ",\"id\":" + e.id) +
           ",\"label\":" + std::to_string(pred) + ",\"probs\":" + number_list(probs.data(), C, "%.6g");
    if (o.logits) out += ",\"logits\":" + number_list(l, C, "%.9g");
    if (e.label >= 0) {
      out += ",\"target\":" + std::to_string(e.label);
      correct += pred == e.label;
      ++confusion[static_cast<size_t>(e.label * C + pred)];
    }
    out += "}\n";
    flush(false);
  }
  flush(true);
  if (file) file->commit();  // stdout is checked once the command returns (main.cpp)

  std::fprintf(stderr, "classified %lld sequences (%lld positions) in %.3f s: %.1f sequences/s, %.0f positions/s "
               "(batch %lld, %d threads)\n",
               static_cast<long long>(N), static_cast<long long>(positions), seconds, N / std::max(seconds, 1e-9),
               static_cast<double>(positions) / std::max(seconds, 1e-9), static_cast<long long>(so.max_batch),
               effective_threads(o.model.threads));
  nlohmann::ordered_json metrics = {{"model", model->dir().string()}, {"examples", N}, {"num_classes", C},
                            {"seconds", seconds}, {"sequences_per_second", N / std::max(seconds, 1e-9)}};
  if (ds.has_labels) {
    const double acc = static_cast<double>(correct) / static_cast<double>(N);
    std::fprintf(stderr, "accuracy: %.4f (%lld/%lld)\n", acc, static_cast<long long>(correct), static_cast<long long>(N));
    std::fprintf(stderr, "confusion matrix (rows: target, columns: predicted):\n%6s", "");
    for (int64_t c = 0; c < C; ++c) std::fprintf(stderr, " %6lld", static_cast<long long>(c));
    std::fprintf(stderr, "\n");
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int64_t y = 0; y < C; ++y) {
      std::fprintf(stderr, "%6lld", static_cast<long long>(y));
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int64_t c = 0; c < C; ++c) {
        std::fprintf(stderr, " %6lld", static_cast<long long>(confusion[static_cast<size_t>(y * C + c)]));
        row.push_back(confusion[static_cast<size_t>(y * C + c)]);
      }
      std::fprintf(stderr, "\n");
      rows.push_back(row);
    }
    metrics["accuracy"] = acc;
    metrics["correct"] = correct;
    metrics["confusion"] = rows;
  }
  if (!o.metrics_json.empty()) write_file_atomically(o.metrics_json, metrics.dump(2) + "\n");
  if (o.model.verbose) std::fprintf(stderr, "\n%s", session.describe_plans().c_str());
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
      "Sequences are batched by length (-b) and predictions come out in input order, one JSON object per\n"
      "line: {\"index\", \"id\" (the input's, if it has one), \"label\" (predicted class), \"probs\" (softmax of the\n"
      "logits), \"target\" (if known)}. JSONL lines take no other keys; either all lines have a label or none.\n"
      "With labels, accuracy and a confusion matrix go to stderr (and to --metrics-json).");
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
      "  echo '{\"tokens\": [3, 1, 4, 1, 5]}' | longvq classify -m tests/fixtures/cls_batchnorm_tokens");
  return {app, [o] { return run_classify(*o); }};
}

}  // namespace longvq::cli
