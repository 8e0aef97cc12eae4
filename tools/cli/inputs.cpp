#include "tools/cli/inputs.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

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
  nlohmann::json j;
  std::string duplicate;
  std::vector<std::string> keys;
  // nlohmann keeps the last of two equal keys silently; the callback sees every key.
  auto see_key = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (std::find(keys.begin(), keys.end(), k) != keys.end() && duplicate.empty()) duplicate = k;
      keys.push_back(k);
    }
    return true;
  };
  try {
    j = nlohmann::json::parse(line, see_key);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: a number too large
    std::string what = e.what();
    const size_t colon = what.rfind(": ");
    throw InputError(where + ": not valid JSON (" + (colon == std::string::npos ? what : what.substr(colon + 2)) + ")");
  }
  if (!j.is_object())
    throw InputError(where + ": expected a JSON object like {\"tokens\": [...]}, {\"text\": \"...\"} or "
                     "{\"pixels\": [...]}");
  if (!duplicate.empty()) throw InputError(where + ": the key \"" + duplicate + "\" appears twice; give it once");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(kJsonlKeys.begin(), kJsonlKeys.end(), it.key()) != kJsonlKeys.end()) continue;
    const std::string guess = closest(it.key(), kJsonlKeys);
    throw InputError(where + ": unknown key \"" + it.key() + "\"" + (guess.empty() ? "" : " (did you mean \"" + guess + "\"?)") +
                     "; a line holds one of \"tokens\", \"text\" or \"pixels\", and optionally \"label\" and \"id\"");
  }
  const int kinds = int(j.contains("tokens")) + int(j.contains("text")) + int(j.contains("pixels"));
  if (kinds != 1)
    throw InputError(where + (kinds == 0 ? ": no input: give one of \"tokens\", \"text\" or \"pixels\""
                                         : ": give only one of \"tokens\", \"text\" and \"pixels\""));
  const int64_t V = cfg_.vocab_size;
  Example e;
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

Dataset InputReader::read_jsonl(std::istream& in, const std::string& name, const ReadOptions& options) const {
  Dataset ds;
  std::string line;
  PixelRule pixels(options.pixels);
  LabelRule labels;
  for (int64_t lineno = 1;
       (options.limit < 0 || static_cast<int64_t>(ds.examples.size()) < options.limit) && next_line(in, line); ++lineno) {
    if (blank(line)) continue;
    const std::string where = name + ":" + std::to_string(lineno);
    Example e = parse_jsonl_line(line, where, options);
    if (!options.ignore_labels) labels.check(e.label >= 0, where);
    if (real()) pixels.check(e.length(), where);
    ds.examples.push_back(std::move(e));
  }
  if (in.bad()) throw std::runtime_error(name + ": read failed");
  ds.has_labels = !ds.examples.empty() && ds.examples.front().label >= 0;
  return ds;
}

Dataset InputReader::read_tsv(std::istream& in, const std::string& name, const ReadOptions& options) const {
  if (real())
    throw std::runtime_error(name + ": a TSV holds text tokens, but this model takes pixel values");
  Dataset ds;
  std::string line;
  for (int64_t lineno = 1;
       (options.limit < 0 || static_cast<int64_t>(ds.examples.size()) < options.limit) && next_line(in, line); ++lineno) {
    if (lineno == 1 && line.rfind("Source\t", 0) == 0) continue;  // the ListOps header
    if (blank(line)) continue;
    const std::string where = name + ":" + std::to_string(lineno);
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
    ds.examples.push_back(std::move(e));
  }
  if (in.bad()) throw std::runtime_error(name + ": read failed");
  ds.has_labels = !options.ignore_labels && !ds.examples.empty();
  return ds;
}

Dataset InputReader::read_idx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels,
                              const ReadOptions& options) const {
  if (!real())
    throw std::runtime_error(images.string() + ": IDX images hold pixels, but this model takes tokens (its "
                             "tokenizer is '" + std::string(to_string(cfg_.tokenizer.kind)) + "')");
  const std::string img = read_input(images.string(), options.max_input_bytes);
  const std::string where = images.string();
  const auto* p = reinterpret_cast<const unsigned char*>(img.data());
  if (img.size() < 16 || be32(p) != 0x00000803)
    throw InputError(where + ": not an IDX image file (expected magic 0x00000803 and three dimensions)");
  const uint64_t n = be32(p + 4), rows = be32(p + 8), cols = be32(p + 12);
  const std::string dims = std::to_string(n) + " images of " + std::to_string(rows) + " × " + std::to_string(cols);
  uint64_t per = 0, need = 0;  // checked: 2^31 × 2^31 × 4 must not wrap to a small number
  const bool wraps = __builtin_mul_overflow(rows, cols, &per) || __builtin_mul_overflow(n, per, &need) ||
                     __builtin_add_overflow(need, uint64_t{16}, &need);
  if (per == 0 && !wraps) throw InputError(where + ": images of " + std::to_string(rows) + " × " + std::to_string(cols) + " pixels");
  if (wraps || img.size() != need)
    throw InputError(where + ": " + dims + " need " + (wraps ? "more than 2^64" : std::to_string(need)) +
                     " bytes, the file has " + std::to_string(img.size()) + " (truncated, or not an IDX file?)");
  PixelRule(options.pixels == kSamePixels ? kAnyPixels : options.pixels).check(static_cast<int64_t>(per), where);
  std::string lab;
  if (labels) {
    lab = read_input(labels->string(), options.max_input_bytes);
    const auto* q = reinterpret_cast<const unsigned char*>(lab.data());
    if (lab.size() < 8 || be32(q) != 0x00000801)
      throw InputError(labels->string() + ": not an IDX label file (expected magic 0x00000801 and one dimension)");
    if (be32(q + 4) != n || lab.size() != 8 + n)
      throw InputError(labels->string() + ": " + std::to_string(be32(q + 4)) + " labels in " +
                       std::to_string(lab.size()) + " bytes, but the images file holds " + std::to_string(n) +
                       " images");
  }
  const uint64_t count = options.limit < 0 ? n : std::min<uint64_t>(n, static_cast<uint64_t>(options.limit));
  Dataset ds;
  ds.has_labels = labels.has_value() && count > 0;
  ds.rows = static_cast<int64_t>(rows);
  ds.cols = static_cast<int64_t>(cols);
  ds.examples.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    Example& e = ds.examples[i];
    e.values = tok_.encode_pixels({reinterpret_cast<const uint8_t*>(img.data()) + 16 + i * per, per});
    if (labels) {
      const int64_t y = static_cast<unsigned char>(lab[8 + i]);
      check_label(y, labels->string() + ": record " + std::to_string(i));
      e.label = static_cast<int32_t>(y);
    }
  }
  return ds;
}

}  // namespace longvq::cli
