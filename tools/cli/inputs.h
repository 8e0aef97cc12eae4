// Classifier inputs for `longvq classify`: JSONL, ListOps TSV and Fashion-MNIST IDX, read and
// encoded for a given model. Every problem names the file and line (or record) and says what
// is wrong (InputError, exit 1).
//
//   JSONL  one object per line: {"tokens": [ids]} | {"text": "..."} | {"pixels": [0..255]},
//          optional "label" (int); other keys are ignored; blank lines are skipped
//   TSV    ListOps: header "Source<TAB>Target", then whitespace-separated tokens, TAB, label
//   IDX    images (magic 0x803, N × rows × cols bytes), labels (magic 0x801, N bytes)
#pragma once

#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"
#include "loaders/config.h"

namespace longvq::cli {

struct Example {
  std::vector<int32_t> tokens;  // token-embedded models
  std::vector<float> values;    // real-embedded models (pixels, normalized)
  int32_t label = -1;           // -1: unknown
  int64_t length() const { return static_cast<int64_t>(tokens.empty() ? values.size() : tokens.size()); }
};

struct Dataset {
  std::vector<Example> examples;
  bool has_labels = false;  // every example has a label
};

enum class InputFormat { jsonl, tsv, idx };

// By extension: .jsonl/.json/.ndjson, .tsv, *idx3-ubyte; "-" (stdin) is JSONL. Throws
// UsageError for anything else (and for .gz, which must be unpacked first).
InputFormat detect_format(const std::string& path);

// The labels file beside an IDX images file: "...-images-idx3-ubyte" → "...-labels-idx1-ubyte"
// (also "images.idx3-ubyte" → "labels.idx1-ubyte"); empty when the name has no such part.
std::filesystem::path idx_labels_beside(const std::filesystem::path& images);

// Turns records into model inputs for one model: checks input kinds against the embedding,
// token ids against the vocabulary and labels against the classes.
class InputReader {
 public:
  explicit InputReader(const ModelConfig& cfg);

  // `name` is used in messages ("data.jsonl", "<stdin>"); limit < 0 = all.
  Dataset read_jsonl(std::istream& in, const std::string& name, int64_t limit = -1) const;
  Dataset read_tsv(std::istream& in, const std::string& name, int64_t limit = -1) const;
  Dataset read_idx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels,
                   int64_t limit = -1) const;

 private:
  bool real() const { return cfg_.embedding.kind == EmbeddingConfig::Kind::real; }
  void check_label(int64_t label, const std::string& where) const;
  void finish(Example& e, const std::string& where) const;

  ModelConfig cfg_;
  Tokenizer tok_;
};

}  // namespace longvq::cli
