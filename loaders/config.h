// The typed model configuration, config.json (design page §1, docs/file-formats.md §2).
//
// Mirrors the Python `Config` (tools/longvq_ref/config.py) field for field, with the same
// defaults for absent fields, the same refusal of unknown fields (top level and inside a
// section), the same range checks in the same order with the same messages, and the same
// fingerprint() string. On top of Python, it checks JSON types (an integer field must hold a
// JSON integer, a flag a JSON boolean, ...) and caps sizes at 2^31 − 1 so derived sizes never
// overflow. A config.json read from a file must also give every field (load_config).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace longvq {

inline constexpr int64_t kConfigFormatVersion = 1;

struct AttentionConfig {
  int64_t codebook_size = 64;  // S
  int64_t window = 32;         // W
  bool quantize_window_keys = true;
};

struct EmbeddingConfig {
  enum class Kind { token, real };
  Kind kind = Kind::token;
  double scale = 1.0;  // only for kind == token
};

struct ClassifierConfig {
  int64_t num_classes = 2;
  int64_t hidden = 64;            // c_h
  std::string pooling = "mean";   // only "mean" is supported
  std::string activation = "gelu";  // only "gelu" is supported
};

struct TokenizerConfig {
  enum class Kind { bytes, vocab, pixels };
  Kind kind = Kind::bytes;
  std::vector<std::string> specials;  // bytes: ids 256.. in this order
  std::vector<std::string> tokens;    // vocab: id = index
  std::optional<std::string> unk;     // vocab: token unknown words map to (none: an error)
  double mean = 0.5;                  // pixels: (value/255 − mean) / std
  double std = 0.5;
};

struct ModelConfig {
  enum class Norm { layernorm, scalenorm, rmsnorm, batchnorm };
  enum class Task { lm, classify };

  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t hidden_dim = 128;
  int64_t z_dim = 32;
  int64_t ema_ndim = 16;
  int64_t ffn_dim = 128;
  int64_t n_layers = 2;
  AttentionConfig attention;
  Norm norm = Norm::layernorm;
  bool prenorm = true;
  bool final_norm_affine = true;
  double norm_eps = 1e-5;
  bool bidirectional = false;
  Task task = Task::lm;
  EmbeddingConfig embedding;
  bool tie_embeddings = true;
  std::optional<ClassifierConfig> classifier;
  TokenizerConfig tokenizer;
  int64_t format_version = kConfigFormatVersion;

  // Derived sizes, named as in the design page.
  int64_t mx_dim() const { return 2 * d_model + z_dim + hidden_dim; }  // rows of mx_proj: u|z|r|hx
  int64_t ema_channels() const { return bidirectional ? 2 * d_model : d_model; }  // D'
  int64_t rel_bias_len() const { return bidirectional ? 2 * attention.window + 1 : attention.window + 1; }

  // Config.validate(): throws LoadError (bad_config, or unknown_version for format_version);
  // `where` names the file in the message.
  void validate(const std::string& where = "config") const;

  // Config.fingerprint(), byte for byte, e.g.
  // "longvq-v1:V=257,d=128,h=256,e=64,N=16,f=256,L=4,S=64,W=32,qwk=1,norm=layernorm,prenorm=1,bidir=0"
  std::string fingerprint() const;
};

std::string_view to_string(ModelConfig::Norm n);       // "layernorm", ...
std::string_view to_string(ModelConfig::Task t);       // "lm" | "classify"
std::string_view to_string(EmbeddingConfig::Kind k);   // "token" | "real"
std::string_view to_string(TokenizerConfig::Kind k);   // "bytes" | "vocab" | "pixels"

// Config.from_dict: parses and validates; `where` (usually the file's path) starts every
// message. Throws LoadError.
ModelConfig parse_config(const nlohmann::json& raw, const std::string& where);

// Config.load: reads `path` (a config.json) and parses it. Throws LoadError. Stricter than
// parse_config and Python: a file must give format_version and every field the exporter
// writes (Config.to_dict), so nothing in a file silently takes a default; it must be a
// regular file (a FIFO or directory is refused without blocking).
ModelConfig load_config(const std::filesystem::path& path);

// Every tensor a model file of this config holds: exactly the Python
// LongVQModel(cfg).state_dict() names and shapes, in the same order.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);

}  // namespace longvq
