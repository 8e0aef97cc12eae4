// Classifier inputs for `longvq classify`: JSONL, ListOps TSV and Fashion-MNIST IDX, read and
// encoded for a given model. Every problem names the file and line (or record) and says what
// is wrong (InputError, exit 1).
//
//   JSONL  one object per line: {"tokens": [ids]} | {"text": "..."} | {"pixels": [0..255]},
//          optional "label" (int) and "id" (string or integer, echoed in the predictions); any
//          other key, or a key twice, is an error; blank lines are skipped. Either every line
//          has a label or none has.
//   TSV    ListOps: header "Source<TAB>Target", then whitespace-separated tokens, one TAB, label
//   IDX    images (magic 0x803, N × rows × cols bytes), labels (magic 0x801, N bytes)
//
// Pixel values are whole numbers 0..255 (bytes, as in IDX files). A model does not record the
// image size it was trained on, so the rule for how many pixels an input has is ReadOptions::pixels.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"
#include "loaders/config.h"
#include "tools/cli/text_input.h"

namespace longvq::cli {

struct Example {
  std::vector<int32_t> tokens;  // token-embedded models
  std::vector<float> values;    // real-embedded models (pixels, normalized)
  int32_t label = -1;           // -1: unknown
  std::string id;               // the JSONL "id" as JSON text (echoed in the predictions); "" = none
  std::string echo;             // the JSONL line's other fields as JSON members ("k":v,...), echoed
  int64_t length() const { return static_cast<int64_t>(tokens.empty() ? values.size() : tokens.size()); }
};

struct Dataset {
  std::vector<Example> examples;
  bool has_labels = false;  // every example has a label
  int64_t rows = 0, cols = 0;  // IDX: each image's size
};

enum class InputFormat { jsonl, tsv, idx };

struct ReadOptions {
  int64_t limit = -1;           // read at most this many examples; < 0 = all
  bool ignore_labels = false;   // --no-labels: labels are neither read nor checked
  // Pixels per input, for pixels models: kSamePixels = as many as the first input of the file
  // (the images of one data set have one size), kAnyPixels = any number, N > 0 = exactly N.
  int64_t pixels = 0;
  int64_t max_input_bytes = kDefaultMaxInputBytes;  // IDX label files (the rest is streamed)
  int64_t first_line = 1;       // the number of the first line read (a slice of a larger file)
};
inline constexpr int64_t kSamePixels = 0;
inline constexpr int64_t kAnyPixels = -1;

// By extension: .jsonl/.json/.ndjson, .tsv, *idx3-ubyte; "-" (stdin) is JSONL. Throws
// UsageError for anything else (and for .gz, which must be unpacked first).
InputFormat detect_format(const std::string& path);

// The labels file beside an IDX images file: "...-images-idx3-ubyte" → "...-labels-idx1-ubyte"
// (also "images.idx3-ubyte" → "labels.idx1-ubyte"); empty when the name has no such part.
std::filesystem::path idx_labels_beside(const std::filesystem::path& images);

// Examples one at a time, as classify streams them: memory holds one line or one image.
class ExampleSource {
 public:
  using NextLine = std::function<bool(std::string&)>;  // the next line, without "\n"; false at the end
  virtual ~ExampleSource() = default;
  // The next example and where it is ("data.jsonl:12", "images: record 3"); false at the end.
  // Throws InputError naming the line or record.
  virtual bool next(Example& e, std::string& where) = 0;
  int64_t total = -1;          // examples in all when known up front (IDX), else -1
  int64_t rows = 0, cols = 0;  // IDX: each image's size
};

// Turns records into model inputs for one model: checks input kinds against the embedding,
// token ids against the vocabulary and labels against the classes.
class InputReader {
 public:
  explicit InputReader(const ModelConfig& cfg);

  // Streaming readers: the reader must outlive them. `name` is used in messages ("data.jsonl",
  // "<stdin>").
  std::unique_ptr<ExampleSource> jsonl(ExampleSource::NextLine lines, const std::string& name,
                                       const ReadOptions& options = {}) const;
  std::unique_ptr<ExampleSource> tsv(ExampleSource::NextLine lines, const std::string& name,
                                     const ReadOptions& options = {}) const;
  std::unique_ptr<ExampleSource> idx(const std::filesystem::path& images,
                                     const std::optional<std::filesystem::path>& labels,
                                     const ReadOptions& options = {}) const;

  // Whole inputs at once (tests, fuzz targets).
  Dataset read_jsonl(std::istream& in, const std::string& name, const ReadOptions& options = {}) const;
  Dataset read_tsv(std::istream& in, const std::string& name, const ReadOptions& options = {}) const;
  Dataset read_idx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels,
                   const ReadOptions& options = {}) const;

 private:
  bool real() const { return cfg_.embedding.kind == EmbeddingConfig::Kind::real; }
  void check_label(int64_t label, const std::string& where) const;
  void finish(Example& e, const std::string& where) const;
  Example parse_jsonl_line(const std::string& line, const std::string& where, const ReadOptions& options) const;
  Example parse_tsv_line(const std::string& line, const std::string& where, const ReadOptions& options) const;
  class JsonlSource;
  class TsvSource;
  class IdxSource;

  ModelConfig cfg_;
  Tokenizer tok_;
};

}  // namespace longvq::cli
