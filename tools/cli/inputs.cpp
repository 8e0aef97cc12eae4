#include "tools/cli/inputs.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "loaders/file_io.h"
#include "tools/cli/common.h"
#include "tools/cli/suggest.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads a line without its "\n" or "\r\n".
bool next_line(std::istream& in, std::string& line) {
  if (!std::getline(in, line)) return false;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Holds every input of a file to ReadOptions::pixels.
class PixelRule {
 public:
  explicit PixelRule(int64_t rule) : rule_(rule) {}
  void check(int64_t count, const std::string& where) {
    if (rule_ == kAnyPixels) return;
    if (rule_ > 0 && count != rule_)
      throw InputError(where + ": " + group_digits(count) + " pixels, but --pixels says " + group_digits(rule_) +
                       " per input");
    if (rule_ == kSamePixels && first_ < 0) {
      first_ = count;
      first_where_ = where;
    } else if (rule_ == kSamePixels && count != first_) {
      throw InputError(where + ": " + group_digits(count) + " pixels, but " + first_where_ + " has " +
                       group_digits(first_) + "; the images of one input file must have one size (--pixels N "
                       "requires N per input, --pixels any allows sequences of any length)");
    }
  }

 private:
  int64_t rule_;
  int64_t first_ = -1;
  std::string first_where_;
};

// Holds every line to one rule: all labelled or none (a data set half labelled would silently
// report no accuracy).
class LabelRule {
 public:
  void check(bool labelled, const std::string& where) {
    if (first_where_.empty()) {
      first_ = labelled;
      first_where_ = where;
    } else if (labelled != first_) {
      throw InputError(where + (labelled ? ": has a label, but " + first_where_ + " has none"
                                         : ": has no label, but " + first_where_ + " has one") +
                       "; label every line or none (--no-labels ignores the labels)");
    }
  }

 private:
  bool first_ = false;
  std::string first_where_;
};

const std::vector<std::string> kJsonlKeys = {"id", "label", "pixels", "text", "tokens"};
// What an output line holds besides the echoed fields (classify_job.h).
const std::vector<std::string> kOutputKeys = {"index", "probs", "logits", "target"};

}  // namespace

InputFormat detect_format(const std::string& path) {
  const std::string p = lower(path);
  if (path == "-" || ends_with(p, ".jsonl") || ends_with(p, ".ndjson") || ends_with(p, ".json")) return InputFormat::jsonl;
  if (ends_with(p, ".tsv")) return InputFormat::tsv;
  if (ends_with(p, ".gz"))
    throw UsageError(path + ": compressed input; unpack it first (gunzip -k " + path + ")");
  if (ends_with(p, "idx3-ubyte")) return InputFormat::idx;
  throw UsageError(path + ": cannot tell the input format from the name; use a .jsonl, .tsv or *-images-idx3-ubyte "
                   "file, or say which with --format jsonl|tsv|idx");
}

std::filesystem::path idx_labels_beside(const std::filesystem::path& images) {
  std::string name = images.filename().string();
  for (auto [from, to] : {std::pair{"images-idx3-ubyte", "labels-idx1-ubyte"},
                          std::pair{"images.idx3-ubyte", "labels.idx1-ubyte"}}) {
    const size_t at = name.rfind(from);
    if (at != std::string::npos) return images.parent_path() / name.replace(at, std::strlen(from), to);
  }
  return {};
}

InputReader::InputReader(const ModelConfig& cfg) : cfg_(cfg), tok_(cfg.tokenizer) {
  if (cfg.task != ModelConfig::Task::classify)
    throw std::runtime_error("this model is a language model ('lm'); classify needs a classifier model");
}

void InputReader::check_label(int64_t label, const std::string& where) const {
  const int64_t C = cfg_.classifier ? cfg_.classifier->num_classes : 0;
  if (label < 0 || label >= C)
    throw InputError(where + ": label " + std::to_string(label) + " is outside this model's classes 0.." +
                     std::to_string(C - 1) + " (does the data set match the model?)");
}

void InputReader::finish(Example& e, const std::string& where) const {
  if (e.length() == 0) throw InputError(where + ": the input is empty; a sequence needs at least one position");
}

Example InputReader::parse_jsonl_line(const std::string& line, const std::string& where,
                                      const ReadOptions& options) const {
  nlohmann::ordered_json j;  // ordered: the echoed fields keep the line's order
  std::string duplicate;
  std::vector<std::string> keys;
  // nlohmann keeps the last of two equal keys silently; the callback sees every key.
  auto see_key = [&](int depth, nlohmann::ordered_json::parse_event_t event, nlohmann::ordered_json& parsed) {
    if (event == nlohmann::ordered_json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (std::find(keys.begin(), keys.end(), k) != keys.end() && duplicate.empty()) duplicate = k;
      keys.push_back(k);
    }
    return true;
  };
  try {
    j = nlohmann::ordered_json::parse(line, see_key);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: a number too large
    std::string what = e.what();
    const size_t colon = what.rfind(": ");
    throw InputError(where + ": not valid JSON (" + (colon == std::string::npos ? what : what.substr(colon + 2)) + ")");
  }
  if (!j.is_object())
    throw InputError(where + ": expected a JSON object like {\"tokens\": [...]}, {\"text\": \"...\"} or "
                     "{\"pixels\": [...]}");
  if (!duplicate.empty()) throw InputError(where + ": the key \"" + duplicate + "\" appears twice; give it once");
  Example e;
  // Other fields are the user's (a file name, a split, ...): echoed into the prediction. A key a
  // letter or two from one of ours is a typo that would silently lose a label or an input.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(kJsonlKeys.begin(), kJsonlKeys.end(), key) != kJsonlKeys.end()) continue;
    if (std::find(kOutputKeys.begin(), kOutputKeys.end(), key) != kOutputKeys.end())
      throw InputError(where + ": the key \"" + key + "\" is one classify writes in its output; rename it (other "
                       "keys are copied into the output line)");
    const std::string guess = closest(key, kJsonlKeys);
    if (!guess.empty())
      throw InputError(where + ": unknown key \"" + key + "\" (did you mean \"" + guess + "\"?); a line holds one of "
                       "\"tokens\", \"text\" or \"pixels\", optionally \"label\" and \"id\", and any other keys (copied into "
                       "the output line)");
    if (!e.echo.empty()) e.echo += ',';
    e.echo += nlohmann::json(key).dump();
    e.echo += ':';
    e.echo += it.value().dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  const int kinds = int(j.contains("tokens")) + int(j.contains("text")) + int(j.contains("pixels"));
  if (kinds != 1)
    throw InputError(where + (kinds == 0 ? ": no input: give one of \"tokens\", \"text\" or \"pixels\""
                                         : ": give only one of \"tokens\", \"text\" and \"pixels\""));
  const int64_t V = cfg_.vocab_size;
  if (j.contains("tokens")) {
    if (real()) throw InputError(where + ": \"tokens\" given, but this model takes pixel values: use \"pixels\"");
    const auto& t = j["tokens"];
    if (!t.is_array()) throw InputError(where + ": \"tokens\" must be an array of token ids");
    e.tokens.reserve(t.size());
    for (size_t i = 0; i < t.size(); ++i) {
      if (!t[i].is_number_integer()) throw InputError(where + ": \"tokens\"[" + std::to_string(i) + "] is not an integer");
      const int64_t id = t[i].get<int64_t>();
      if (id < 0 || id >= V)
        throw InputError(where + ": token id " + std::to_string(id) + " at \"tokens\"[" + std::to_string(i) +
                         "] is outside the vocabulary 0.." + std::to_string(V - 1));
      e.tokens.push_back(static_cast<int32_t>(id));
    }
  } else if (j.contains("text")) {
    if (real()) throw InputError(where + ": \"text\" given, but this model takes pixel values: use \"pixels\"");
    if (!j["text"].is_string()) throw InputError(where + ": \"text\" must be a string");
    try {
      e.tokens = tok_.encode(j["text"].get<std::string>());
    } catch (const TokenizerError& err) {
      throw InputError(where + ": " + err.what());
    }
  } else {
    if (!real()) throw InputError(where + ": \"pixels\" given, but this model takes tokens: use \"tokens\" or \"text\"");
    const auto& p = j["pixels"];
    if (!p.is_array()) throw InputError(where + ": \"pixels\" must be an array of values 0..255");
    e.values.reserve(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_number()) throw InputError(where + ": \"pixels\"[" + std::to_string(i) + "] is not a number");
      const double v = p[i].get<double>();
      // Bytes, as in IDX files: 12.5 is not a pixel of any image this model has seen.
      if (!(v >= 0 && v <= 255) || v != std::floor(v))
        throw InputError(where + ": pixel value " + p[i].dump() + " at \"pixels\"[" + std::to_string(i) +
                         "] is not a whole number 0..255");
      e.values.push_back(tok_.normalize(static_cast<uint8_t>(v)));
    }
  }
  if (j.contains("id")) {
    if (!j["id"].is_string() && !j["id"].is_number_integer())
      throw InputError(where + ": \"id\" must be a string or an integer, got " + j["id"].dump());
    e.id = j["id"].dump();
  }
  if (!options.ignore_labels && j.contains("label") && !j["label"].is_null()) {
    if (!j["label"].is_number_integer()) throw InputError(where + ": \"label\" must be an integer class index");
    check_label(j["label"].get<int64_t>(), where);
    e.label = j["label"].get<int32_t>();
  }
  finish(e, where);
  return e;
}

Example InputReader::parse_tsv_line(const std::string& line, const std::string& where, const ReadOptions& options) const {
  const size_t tabs = static_cast<size_t>(std::count(line.begin(), line.end(), '\t'));
  if (tabs != 1)
    throw InputError(where + ": expected 'TOKENS<TAB>LABEL' (ListOps TSV) with one tab, found " +
                     (tabs == 0 ? std::string("none") : std::to_string(tabs)));
  const size_t tab = line.find('\t');
  const std::string target = line.substr(tab + 1);
  Example e;
  try {
    e.tokens = tok_.encode(std::string_view(line).substr(0, tab));
  } catch (const TokenizerError& err) {
    throw InputError(where + ": " + err.what());
  }
  if (!options.ignore_labels) {
    if (blank(target))
      throw InputError(where + ": the label after the tab is empty; every line needs its label (--no-labels "
                       "ignores the labels)");
    size_t used = 0;
    long long label = 0;
    try {
      label = std::stoll(target, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || !blank(target.substr(used)))
      throw InputError(where + ": label '" + target + "' is not an integer");
    check_label(label, where);
    e.label = static_cast<int32_t>(label);
  }
  finish(e, where);
  return e;
}

namespace {

// Lines of an istream, for the readers that take one (tests, fuzz targets).
ExampleSource::NextLine lines_of(std::istream& in, const std::string& name) {
  return [&in, name](std::string& line) {
    if (next_line(in, line)) return true;
    if (in.bad()) throw std::runtime_error(name + ": read failed");
    return false;
  };
}

Dataset collect(ExampleSource& source) {
  Dataset ds;
  Example e;
  std::string where;
  while (source.next(e, where)) ds.examples.push_back(std::move(e));
  ds.has_labels = !ds.examples.empty() && ds.examples.front().label >= 0;
  ds.rows = source.rows;
  ds.cols = source.cols;
  return ds;
}

class LineSource : public ExampleSource {
 public:
  LineSource(NextLine lines, std::string name, const ReadOptions& options)
      : lines_(std::move(lines)), name_(std::move(name)), options_(options), lineno_(options.first_line - 1) {}
  bool next(Example& e, std::string& where) final {
    if (options_.limit >= 0 && count_ >= options_.limit) return false;
    std::string line;
    while (lines_(line)) {
      ++lineno_;
      if (skip(line)) continue;
      where = name_ + ":" + std::to_string(lineno_);
      e = parse(line, where);
      ++count_;
      return true;
    }
    return false;
  }

 protected:
  virtual bool skip(const std::string& line) const { return blank(line); }
  virtual Example parse(const std::string& line, const std::string& where) = 0;
  NextLine lines_;
  std::string name_;
  ReadOptions options_;
  int64_t lineno_, count_ = 0;
};

}  // namespace

class InputReader::JsonlSource final : public LineSource {
 public:
  JsonlSource(const InputReader& reader, NextLine lines, std::string name, const ReadOptions& options)
      : LineSource(std::move(lines), std::move(name), options), reader_(reader), pixels_(options.pixels) {}

 private:
  Example parse(const std::string& line, const std::string& where) override {
    Example e = reader_.parse_jsonl_line(line, where, options_);
    if (!options_.ignore_labels) labels_.check(e.label >= 0, where);
    if (reader_.real()) pixels_.check(e.length(), where);
    return e;
  }
  const InputReader& reader_;
  PixelRule pixels_;
  LabelRule labels_;
};

class InputReader::TsvSource final : public LineSource {
 public:
  TsvSource(const InputReader& reader, NextLine lines, std::string name, const ReadOptions& options)
      : LineSource(std::move(lines), std::move(name), options), reader_(reader) {}

 private:
  bool skip(const std::string& line) const override {
    return (lineno_ == 1 && line.rfind("Source\t", 0) == 0) || blank(line);  // the ListOps header
  }
  Example parse(const std::string& line, const std::string& where) override {
    return reader_.parse_tsv_line(line, where, options_);
  }
  const InputReader& reader_;
};

std::unique_ptr<ExampleSource> InputReader::jsonl(ExampleSource::NextLine lines, const std::string& name,
                                                  const ReadOptions& options) const {
  return std::make_unique<JsonlSource>(*this, std::move(lines), name, options);
}

std::unique_ptr<ExampleSource> InputReader::tsv(ExampleSource::NextLine lines, const std::string& name,
                                                const ReadOptions& options) const {
  if (real()) throw std::runtime_error(name + ": a TSV holds text tokens, but this model takes pixel values");
  return std::make_unique<TsvSource>(*this, std::move(lines), name, options);
}

Dataset InputReader::read_jsonl(std::istream& in, const std::string& name, const ReadOptions& options) const {
  return collect(*jsonl(lines_of(in, name), name, options));
}

Dataset InputReader::read_tsv(std::istream& in, const std::string& name, const ReadOptions& options) const {
  Dataset ds = collect(*tsv(lines_of(in, name), name, options));
  ds.has_labels = !options.ignore_labels && !ds.examples.empty();
  return ds;
}

class InputReader::IdxSource final : public ExampleSource {
 public:
  IdxSource(const InputReader& reader, const std::filesystem::path& images,
            const std::optional<std::filesystem::path>& labels, const ReadOptions& options)
      : reader_(reader), where_(images.string()) {
    std::string why;
    int err = 0;
    file_ = std::make_unique<InputFile>(open_regular_file(images, why, err));
    if (file_->fd() < 0) throw std::runtime_error(where_ + ": " + (err ? "cannot open the file (" + why + ")" : why));
    unsigned char h[16];
    if (file_->size() < 16 || ::pread(file_->fd(), h, 16, 0) != 16 || be32(h) != 0x00000803)
      throw InputError(where_ + ": not an IDX image file (expected magic 0x00000803 and three dimensions)");
    const uint64_t n = be32(h + 4), r = be32(h + 8), c = be32(h + 12);
    const std::string dims = std::to_string(n) + " images of " + std::to_string(r) + " × " + std::to_string(c);
    uint64_t need = 0;  // checked: 2^31 × 2^31 × 4 must not wrap to a small number
    const bool wraps = __builtin_mul_overflow(r, c, &per_) || __builtin_mul_overflow(n, per_, &need) ||
                       __builtin_add_overflow(need, uint64_t{16}, &need);
    if (per_ == 0 && !wraps) throw InputError(where_ + ": images of " + std::to_string(r) + " × " + std::to_string(c) + " pixels");
    if (wraps || file_->size() != need)
      throw InputError(where_ + ": " + dims + " need " + (wraps ? "more than 2^64" : std::to_string(need)) +
                       " bytes, the file has " + std::to_string(file_->size()) + " (truncated, or not an IDX file?)");
    PixelRule(options.pixels == kSamePixels ? kAnyPixels : options.pixels).check(static_cast<int64_t>(per_), where_);
    if (labels) {
      labels_name_ = labels->string();
      labels_ = read_input(labels_name_, options.max_input_bytes);
      const auto* q = reinterpret_cast<const unsigned char*>(labels_.data());
      if (labels_.size() < 8 || be32(q) != 0x00000801)
        throw InputError(labels_name_ + ": not an IDX label file (expected magic 0x00000801 and one dimension)");
      if (be32(q + 4) != n || labels_.size() != 8 + n)
        throw InputError(labels_name_ + ": " + std::to_string(be32(q + 4)) + " labels in " +
                         std::to_string(labels_.size()) + " bytes, but the images file holds " + std::to_string(n) +
                         " images");
    }
    count_ = options.limit < 0 ? n : std::min<uint64_t>(n, static_cast<uint64_t>(options.limit));
    total = static_cast<int64_t>(count_);
    rows = static_cast<int64_t>(r);
    cols = static_cast<int64_t>(c);
  }

  bool next(Example& e, std::string& where) override {
    if (i_ >= count_) return false;
    where = where_ + ": record " + std::to_string(i_);
    pixels_.resize(per_);
    const off_t at = static_cast<off_t>(16 + i_ * per_);
    for (size_t got = 0; got < per_;) {  // pread may return less than asked
      const ssize_t k = ::pread(file_->fd(), pixels_.data() + got, per_ - got, at + static_cast<off_t>(got));
      if (k <= 0)
        throw std::runtime_error(where + ": read failed (" + (k == 0 ? std::string("the file shrank while read")
                                                                     : std::string(std::strerror(errno))) + ")");
      got += static_cast<size_t>(k);
    }
    e = Example();
    e.values = reader_.tok_.encode_pixels(pixels_);
    if (!labels_.empty()) {
      const int64_t y = static_cast<unsigned char>(labels_[8 + i_]);
      reader_.check_label(y, labels_name_ + ": record " + std::to_string(i_));
      e.label = static_cast<int32_t>(y);
    }
    ++i_;
    return true;
  }

 private:
  const InputReader& reader_;
  std::string where_, labels_name_, labels_;
  std::unique_ptr<InputFile> file_;
  uint64_t per_ = 0, count_ = 0, i_ = 0;
  std::vector<uint8_t> pixels_;
};

std::unique_ptr<ExampleSource> InputReader::idx(const std::filesystem::path& images,
                                                const std::optional<std::filesystem::path>& labels,
                                                const ReadOptions& options) const {
  if (!real())
    throw std::runtime_error(images.string() + ": IDX images hold pixels, but this model takes tokens (its "
                             "tokenizer is '" + std::string(to_string(cfg_.tokenizer.kind)) + "')");
  return std::make_unique<IdxSource>(*this, images, labels, options);
}

Dataset InputReader::read_idx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels,
                              const ReadOptions& options) const {
  Dataset ds = collect(*idx(images, labels, options));
  ds.has_labels = labels.has_value() && !ds.examples.empty();
  return ds;
}

}  // namespace longvq::cli
