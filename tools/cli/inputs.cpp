#include "tools/cli/inputs.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tools/cli/common.h"

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

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open the file (" + std::strerror(errno) + ")");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

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

Dataset InputReader::read_jsonl(std::istream& in, const std::string& name, int64_t limit) const {
  Dataset ds;
  ds.has_labels = true;
  std::string line;
  const int64_t V = cfg_.vocab_size;
  for (int64_t lineno = 1; (limit < 0 || static_cast<int64_t>(ds.examples.size()) < limit) && next_line(in, line);
       ++lineno) {
    if (blank(line)) continue;
    const std::string where = name + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: a number too large
      std::string what = e.what();
      const size_t colon = what.rfind(": ");
      throw InputError(where + ": not valid JSON (" + (colon == std::string::npos ? what : what.substr(colon + 2)) +
                       ")");
    }
    if (!j.is_object())
      throw InputError(where + ": expected a JSON object like {\"tokens\": [...]}, {\"text\": \"...\"} or "
                       "{\"pixels\": [...]}");
    const int kinds = int(j.contains("tokens")) + int(j.contains("text")) + int(j.contains("pixels"));
    if (kinds != 1)
      throw InputError(where + (kinds == 0 ? ": no input: give one of \"tokens\", \"text\" or \"pixels\""
                                           : ": give only one of \"tokens\", \"text\" and \"pixels\""));
    Example e;
    if (j.contains("tokens")) {
      if (real())
        throw InputError(where + ": \"tokens\" given, but this model takes pixel values: use \"pixels\"");
      const auto& t = j["tokens"];
      if (!t.is_array()) throw InputError(where + ": \"tokens\" must be an array of token ids");
      e.tokens.reserve(t.size());
      for (size_t i = 0; i < t.size(); ++i) {
        if (!t[i].is_number_integer())
          throw InputError(where + ": \"tokens\"[" + std::to_string(i) + "] is not an integer");
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
      if (!real())
        throw InputError(where + ": \"pixels\" given, but this model takes tokens: use \"tokens\" or \"text\"");
      const auto& p = j["pixels"];
      if (!p.is_array()) throw InputError(where + ": \"pixels\" must be an array of values 0..255");
      e.values.reserve(p.size());
      for (size_t i = 0; i < p.size(); ++i) {
        if (!p[i].is_number())
          throw InputError(where + ": \"pixels\"[" + std::to_string(i) + "] is not a number");
        const double v = p[i].get<double>();
        if (!(v >= 0 && v <= 255))
          throw InputError(where + ": pixel value " + p[i].dump() + " at \"pixels\"[" + std::to_string(i) +
                           "] is outside 0..255");
        e.values.push_back(p[i].is_number_integer() ? tok_.normalize(static_cast<uint8_t>(p[i].get<int64_t>()))
                                                    : tok_.normalize(static_cast<float>(v)));
      }
    }
    if (j.contains("label") && !j["label"].is_null()) {
      if (!j["label"].is_number_integer()) throw InputError(where + ": \"label\" must be an integer class index");
      check_label(j["label"].get<int64_t>(), where);
      e.label = j["label"].get<int32_t>();
    } else {
      ds.has_labels = false;
    }
    finish(e, where);
    ds.examples.push_back(std::move(e));
  }
  if (in.bad()) throw std::runtime_error(name + ": read failed");
  if (ds.examples.empty()) ds.has_labels = false;
  return ds;
}

Dataset InputReader::read_tsv(std::istream& in, const std::string& name, int64_t limit) const {
  if (real())
    throw std::runtime_error(name + ": a TSV holds text tokens, but this model takes pixel values");
  Dataset ds;
  ds.has_labels = true;
  std::string line;
  for (int64_t lineno = 1; (limit < 0 || static_cast<int64_t>(ds.examples.size()) < limit) && next_line(in, line);
       ++lineno) {
    if (lineno == 1 && line.rfind("Source\t", 0) == 0) continue;  // the ListOps header
    if (blank(line)) continue;
    const std::string where = name + ":" + std::to_string(lineno);
    const size_t tab = line.rfind('\t');
    if (tab == std::string::npos)
      throw InputError(where + ": expected 'TOKENS<TAB>LABEL' (ListOps TSV), found no tab");
    const std::string target = line.substr(tab + 1);
    Example e;
    try {
      e.tokens = tok_.encode(std::string_view(line).substr(0, tab));
    } catch (const TokenizerError& err) {
      throw InputError(where + ": " + err.what());
    }
    if (!blank(target)) {
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
    } else {
      ds.has_labels = false;
    }
    finish(e, where);
    ds.examples.push_back(std::move(e));
  }
  if (in.bad()) throw std::runtime_error(name + ": read failed");
  if (ds.examples.empty()) ds.has_labels = false;
  return ds;
}

Dataset InputReader::read_idx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels,
                              int64_t limit) const {
  if (!real())
    throw std::runtime_error(images.string() + ": IDX images hold pixels, but this model takes tokens (its "
                             "tokenizer is '" + std::string(to_string(cfg_.tokenizer.kind)) + "')");
  const std::string img = read_all(images);
  const std::string where = images.string();
  const auto* p = reinterpret_cast<const unsigned char*>(img.data());
  if (img.size() < 16 || be32(p) != 0x00000803)
    throw InputError(where + ": not an IDX image file (expected magic 0x00000803 and three dimensions)");
  const uint64_t n = be32(p + 4), rows = be32(p + 8), cols = be32(p + 12);
  const uint64_t per = rows * cols;
  if (per == 0) throw InputError(where + ": images of " + std::to_string(rows) + " × " + std::to_string(cols) + " pixels");
  if (img.size() != 16 + n * per)
    throw InputError(where + ": " + std::to_string(n) + " images of " + std::to_string(rows) + " × " +
                     std::to_string(cols) + " need " + std::to_string(16 + n * per) + " bytes, the file has " +
                     std::to_string(img.size()) + " (truncated?)");
  std::string lab;
  if (labels) {
    lab = read_all(*labels);
    const auto* q = reinterpret_cast<const unsigned char*>(lab.data());
    if (lab.size() < 8 || be32(q) != 0x00000801)
      throw InputError(labels->string() + ": not an IDX label file (expected magic 0x00000801 and one dimension)");
    if (be32(q + 4) != n || lab.size() != 8 + n)
      throw InputError(labels->string() + ": " + std::to_string(be32(q + 4)) + " labels in " +
                       std::to_string(lab.size()) + " bytes, but the images file holds " + std::to_string(n) +
                       " images");
  }
  const uint64_t count = limit < 0 ? n : std::min<uint64_t>(n, static_cast<uint64_t>(limit));
  Dataset ds;
  ds.has_labels = labels.has_value() && count > 0;
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
