#include "loaders/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "loaders/file_io.h"
#include "loaders/json_util.h"
#include "loaders/load_error.h"

namespace longvq {

namespace {

using json = nlohmann::json;
using K = LoadError::Kind;

constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
constexpr size_t kMaxConfigDepth = 64;

[[noreturn]] void fail(const std::string& where, const std::string& msg, K kind = K::bad_config) {
  throw LoadError(kind, where, "", msg);
}

// What parsing saw beyond the typed values: kind strings that name no known kind (kept so that
// validation reports them at the same point as Python does), and how float fields were written
// (Python prints an integer-valued JSON number as "0", a float as "0.0").
struct RawView {
  std::optional<std::string> bad_norm, bad_task, bad_embedding, bad_tokenizer;
  std::optional<std::string> norm_eps_text, scale_text, std_text;
};

std::string num_text(double v, const std::optional<std::string>& written) {
  return written ? *written : detail::py_float_repr(v);
}

// ---- JSON field readers ----------------------------------------------------------------------
class Section {
 public:
  Section(const json& obj, std::string prefix, const std::string& where)
      : obj_(obj), prefix_(std::move(prefix)), where_(where) {}

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  std::string field(const char* key) const { return prefix_ + key; }

  void read_int(const char* key, int64_t& out) const {
    const json* v = get(key);
    if (!v) return;
    if (v->is_number_unsigned()) {
      if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(where_, "config field " + field(key) + " is " + v->dump() + ", far more than this engine supports (" +
             std::to_string(kMaxSize) + ")");
      }
      out = static_cast<int64_t>(v->get<uint64_t>());
    } else if (v->is_number_integer()) {
      out = v->get<int64_t>();
    } else {
      fail(where_, "config field " + field(key) + " must be an integer, got " + detail::py_repr(*v));
    }
  }
  void read_bool(const char* key, bool& out) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_boolean()) fail(where_, "config field " + field(key) + " must be true or false, got " + detail::py_repr(*v));
    out = v->get<bool>();
  }
  void read_double(const char* key, double& out, std::optional<std::string>* written = nullptr) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_number()) fail(where_, "config field " + field(key) + " must be a number, got " + detail::py_repr(*v));
    out = v->get<double>();
    if (written && v->is_number_integer()) *written = detail::py_repr(*v);
  }
  void read_string(const char* key, std::string& out) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_string()) fail(where_, "config field " + field(key) + " must be a string, got " + detail::py_repr(*v));
    out = v->get<std::string>();
  }
  void read_opt_string(const char* key, std::optional<std::string>& out) const {
    const json* v = get(key);
    if (!v) return;
    if (v->is_null()) {
      out.reset();
      return;
    }
    if (!v->is_string()) {
      fail(where_, "config field " + field(key) + " must be a string or null, got " + detail::py_repr(*v));
    }
    out = v->get<std::string>();
  }
  void read_strings(const char* key, std::vector<std::string>& out) const {
    const json* v = get(key);
    if (!v) return;
    bool ok = v->is_array();
    if (ok) {
      for (const auto& e : *v) ok = ok && e.is_string();
    }
    if (!ok) fail(where_, "config field " + field(key) + " must be a list of strings, got " + detail::py_repr(*v));
    out.clear();
    for (const auto& e : *v) out.push_back(e.get<std::string>());
  }
  // A kind name: the matching enum value, or the text Python would print for an unknown one.
  template <typename E>
  void read_kind(const char* key, E& out, std::optional<std::string>& bad,
                 std::initializer_list<E> values) const {
    const json* v = get(key);
    if (!v) return;
    if (v->is_string()) {
      for (E e : values) {
        if (v->get_ref<const std::string&>() == to_string(e)) {
          out = e;
          return;
        }
      }
      bad = v->get<std::string>();
    } else {
      bad = v->is_null() ? "None" : detail::py_repr(*v);
    }
  }

 private:
  const json& obj_;
  std::string prefix_;
  const std::string& where_;
};

// Every field config.json may hold (sorted, as Python lists them), top level and per section.
const std::vector<std::string> kKnownTop = {
    "attention", "bidirectional", "classifier", "d_model", "ema_ndim", "embedding", "ffn_dim",
    "final_norm_affine", "format_version", "hidden_dim", "n_layers", "norm", "norm_eps", "prenorm",
    "task", "tie_embeddings", "tokenizer", "vocab_size", "z_dim"};
const std::map<std::string, std::vector<std::string>> kKnownSections = {
    {"attention", {"codebook_size", "quantize_window_keys", "window"}},
    {"embedding", {"kind", "scale"}},
    {"classifier", {"activation", "hidden", "num_classes", "pooling"}},
    {"tokenizer", {"kind", "mean", "specials", "std", "tokens", "unk"}}};

// Refuses keys outside `known` (sorted): Python's unknown-field check.
void check_keys(const json& obj, const std::vector<std::string>& known, const std::string& where,
                const char* section) {
  std::vector<std::string> unknown;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!std::binary_search(known.begin(), known.end(), it.key())) unknown.push_back(it.key());
  }
  if (unknown.empty()) return;
  if (section == nullptr) {
    fail(where, "unknown config field(s) " + detail::py_list_repr(unknown) + "; this reader knows " +
         detail::py_list_repr(known));
  }
  fail(where, std::string("bad config section '") + section + "': unknown field(s) " +
       detail::py_list_repr(unknown) + "; it knows " + detail::py_list_repr(known));
}

const json& section_object(const json& raw, const char* name, const std::string& where) {
  const json& s = raw.at(name);
  if (!s.is_object()) {
    fail(where, std::string("bad config section '") + name + "': must be a JSON object, got " + detail::py_repr(s));
  }
  return s;
}

// ---- Config.validate ---------------------------------------------------------------------------
void validate_impl(const ModelConfig& c, const RawView& raw, const std::string& where) {
  auto need = [&](bool cond, const std::string& msg) {
    if (!cond) fail(where, msg);
  };
  if (c.format_version != kConfigFormatVersion) {
    fail(where, "config format_version " + std::to_string(c.format_version) + " is not supported (this reader knows " +
         std::to_string(kConfigFormatVersion) + "); re-export the model with this version's exporter",
         K::unknown_version);
  }
  const std::pair<const char*, int64_t> positive[] = {{"d_model", c.d_model}, {"hidden_dim", c.hidden_dim},
                                                      {"z_dim", c.z_dim}, {"ema_ndim", c.ema_ndim},
                                                      {"n_layers", c.n_layers}};
  for (const auto& [name, value] : positive) {
    need(value > 0, std::string("config field ") + name + " must be > 0, got " + std::to_string(value));
  }
  need(c.ffn_dim >= 0, "config field ffn_dim must be >= 0 (0 = no FFN), got " + std::to_string(c.ffn_dim));
  need(c.attention.codebook_size >= 1,
       "attention.codebook_size must be >= 1, got " + std::to_string(c.attention.codebook_size));
  need(c.attention.window >= 0, "attention.window must be >= 0, got " + std::to_string(c.attention.window));
  need(!raw.bad_norm, "unknown norm '" + raw.bad_norm.value_or("") +
       "'; use one of layernorm, scalenorm, rmsnorm, batchnorm");
  need(c.norm_eps > 0 && std::isfinite(c.norm_eps), "norm_eps must be > 0, got " + num_text(c.norm_eps, raw.norm_eps_text));
  need(!raw.bad_task, "unknown task '" + raw.bad_task.value_or("") + "'; use one of lm, classify");
  need(!raw.bad_embedding, "unknown embedding.kind '" + raw.bad_embedding.value_or("") + "'; use one of token, real");
  need(!raw.bad_tokenizer, "unknown tokenizer.kind '" + raw.bad_tokenizer.value_or("") +
       "'; use one of bytes, vocab, pixels");
  if (c.embedding.kind == EmbeddingConfig::Kind::token) {
    need(c.vocab_size > 0, "vocab_size must be > 0, got " + std::to_string(c.vocab_size));
    need(c.embedding.scale > 0 && std::isfinite(c.embedding.scale),
         "embedding.scale must be > 0, got " + num_text(c.embedding.scale, raw.scale_text));
  }
  if (c.task == ModelConfig::Task::lm) {
    need(!c.bidirectional, "a task 'lm' model must be causal: set bidirectional to false");
    need(c.embedding.kind == EmbeddingConfig::Kind::token, "a task 'lm' model needs embedding.kind 'token'");
    need(c.norm != ModelConfig::Norm::batchnorm,
         "batchnorm is for classifiers only; use layernorm, scalenorm or rmsnorm");
  } else {
    need(c.classifier.has_value(), "a task 'classify' model needs a 'classifier' section");
    const ClassifierConfig& k = *c.classifier;
    need(k.num_classes >= 2, "classifier.num_classes must be >= 2, got " + std::to_string(k.num_classes));
    need(k.hidden > 0, "classifier.hidden must be > 0, got " + std::to_string(k.hidden));
    need(k.pooling == "mean", "classifier.pooling '" + k.pooling + "' is not supported; use 'mean'");
    need(k.activation == "gelu", "classifier.activation '" + k.activation + "' is not supported; use 'gelu'");
  }
  const TokenizerConfig& t = c.tokenizer;
  switch (t.kind) {
    case TokenizerConfig::Kind::bytes: {
      const int64_t want = 256 + static_cast<int64_t>(t.specials.size());
      need(c.vocab_size == want, "a bytes tokenizer with " + std::to_string(t.specials.size()) +
           " specials needs vocab_size " + std::to_string(want) + ", got " + std::to_string(c.vocab_size));
      break;
    }
    case TokenizerConfig::Kind::vocab:
      need(static_cast<int64_t>(t.tokens.size()) == c.vocab_size,
           "tokenizer.tokens lists " + std::to_string(t.tokens.size()) + " tokens but vocab_size is " +
           std::to_string(c.vocab_size));
      need(!t.unk || std::find(t.tokens.begin(), t.tokens.end(), *t.unk) != t.tokens.end(),
           "tokenizer.unk '" + t.unk.value_or("") + "' is not in tokenizer.tokens");
      break;
    case TokenizerConfig::Kind::pixels:
      need(c.embedding.kind == EmbeddingConfig::Kind::real, "a pixels tokenizer needs embedding.kind 'real'");
      need(t.std > 0, "tokenizer.std must be > 0, got " + num_text(t.std, raw.std_text));
      break;
  }
  // Beyond Python: sizes an int32 holds, so every derived size and shape fits in int64.
  std::vector<std::pair<std::string, int64_t>> sizes = {
      {"vocab_size", c.vocab_size}, {"d_model", c.d_model}, {"hidden_dim", c.hidden_dim},
      {"z_dim", c.z_dim}, {"ema_ndim", c.ema_ndim}, {"ffn_dim", c.ffn_dim}, {"n_layers", c.n_layers},
      {"attention.codebook_size", c.attention.codebook_size}, {"attention.window", c.attention.window}};
  if (c.classifier) {
    sizes.emplace_back("classifier.num_classes", c.classifier->num_classes);
    sizes.emplace_back("classifier.hidden", c.classifier->hidden);
  }
  for (const auto& [name, value] : sizes) {
    need(value <= kMaxSize && value >= -kMaxSize, "config field " + name + " is " + std::to_string(value) +
         ", outside what this engine supports (at most " + std::to_string(kMaxSize) + " in size)");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
std::string_view to_string(ModelConfig::Norm n) {
  switch (n) {
    case ModelConfig::Norm::layernorm: return "layernorm";
    case ModelConfig::Norm::scalenorm: return "scalenorm";
    case ModelConfig::Norm::rmsnorm: return "rmsnorm";
    case ModelConfig::Norm::batchnorm: return "batchnorm";
  }
  return "?";
}

std::string_view to_string(ModelConfig::Task t) {
  switch (t) {
    case ModelConfig::Task::lm: return "lm";
    case ModelConfig::Task::classify: return "classify";
  }
  return "?";
}

std::string_view to_string(EmbeddingConfig::Kind k) {
  switch (k) {
    case EmbeddingConfig::Kind::token: return "token";
    case EmbeddingConfig::Kind::real: return "real";
  }
  return "?";
}

std::string_view to_string(TokenizerConfig::Kind k) {
  switch (k) {
    case TokenizerConfig::Kind::bytes: return "bytes";
    case TokenizerConfig::Kind::vocab: return "vocab";
    case TokenizerConfig::Kind::pixels: return "pixels";
  }
  return "?";
}

void ModelConfig::validate(const std::string& where) const { validate_impl(*this, RawView{}, where); }

std::string ModelConfig::fingerprint() const {
  const AttentionConfig& a = attention;
  std::ostringstream s;
  s << "longvq-v" << format_version << ":V=" << vocab_size << ",d=" << d_model << ",h=" << hidden_dim
    << ",e=" << z_dim << ",N=" << ema_ndim << ",f=" << ffn_dim << ",L=" << n_layers << ",S=" << a.codebook_size
    << ",W=" << a.window << ",qwk=" << int(a.quantize_window_keys) << ",norm=" << to_string(norm)
    << ",prenorm=" << int(prenorm) << ",bidir=" << int(bidirectional);
  return s.str();
}

ModelConfig parse_config(const nlohmann::json& raw, const std::string& where) {
  if (!raw.is_object()) {
    fail(where, "config is not a JSON object (got " + std::string(raw.type_name()) +
         "); pass a config.json made by the exporter");
  }
  ModelConfig c;
  RawView rv;
  const Section top(raw, "", where);
  // The version first: a config of another version may well have fields this one does not know.
  top.read_int("format_version", c.format_version);
  if (c.format_version != kConfigFormatVersion) validate_impl(c, rv, where);  // throws unknown_version

  check_keys(raw, kKnownTop, where, nullptr);

  top.read_int("vocab_size", c.vocab_size);
  top.read_int("d_model", c.d_model);
  top.read_int("hidden_dim", c.hidden_dim);
  top.read_int("z_dim", c.z_dim);
  top.read_int("ema_ndim", c.ema_ndim);
  top.read_int("ffn_dim", c.ffn_dim);
  top.read_int("n_layers", c.n_layers);
  top.read_kind("norm", c.norm, rv.bad_norm,
                {ModelConfig::Norm::layernorm, ModelConfig::Norm::scalenorm, ModelConfig::Norm::rmsnorm,
                 ModelConfig::Norm::batchnorm});
  top.read_bool("prenorm", c.prenorm);
  top.read_bool("final_norm_affine", c.final_norm_affine);
  top.read_double("norm_eps", c.norm_eps, &rv.norm_eps_text);
  top.read_bool("bidirectional", c.bidirectional);
  top.read_kind("task", c.task, rv.bad_task, {ModelConfig::Task::lm, ModelConfig::Task::classify});
  top.read_bool("tie_embeddings", c.tie_embeddings);

  if (raw.contains("attention")) {
    const json& s = section_object(raw, "attention", where);
    check_keys(s, kKnownSections.at("attention"), where, "attention");
    const Section sec(s, "attention.", where);
    sec.read_int("codebook_size", c.attention.codebook_size);
    sec.read_int("window", c.attention.window);
    sec.read_bool("quantize_window_keys", c.attention.quantize_window_keys);
  }
  if (raw.contains("embedding")) {
    const json& s = section_object(raw, "embedding", where);
    check_keys(s, kKnownSections.at("embedding"), where, "embedding");
    const Section sec(s, "embedding.", where);
    sec.read_kind("kind", c.embedding.kind, rv.bad_embedding,
                  {EmbeddingConfig::Kind::token, EmbeddingConfig::Kind::real});
    sec.read_double("scale", c.embedding.scale, &rv.scale_text);
  }
  if (raw.contains("classifier") && !raw.at("classifier").is_null()) {
    const json& s = section_object(raw, "classifier", where);
    check_keys(s, kKnownSections.at("classifier"), where, "classifier");
    const Section sec(s, "classifier.", where);
    ClassifierConfig k;
    sec.read_int("num_classes", k.num_classes);
    sec.read_int("hidden", k.hidden);
    sec.read_string("pooling", k.pooling);
    sec.read_string("activation", k.activation);
    c.classifier = k;
  }
  if (raw.contains("tokenizer")) {
    const json& s = section_object(raw, "tokenizer", where);
    check_keys(s, kKnownSections.at("tokenizer"), where, "tokenizer");
    const Section sec(s, "tokenizer.", where);
    sec.read_kind("kind", c.tokenizer.kind, rv.bad_tokenizer,
                  {TokenizerConfig::Kind::bytes, TokenizerConfig::Kind::vocab, TokenizerConfig::Kind::pixels});
    sec.read_strings("specials", c.tokenizer.specials);
    sec.read_strings("tokens", c.tokenizer.tokens);
    sec.read_opt_string("unk", c.tokenizer.unk);
    sec.read_double("mean", c.tokenizer.mean);
    sec.read_double("std", c.tokenizer.std, &rv.std_text);
  }
  validate_impl(c, rv, where);
  return c;
}

namespace {

// config.json must spell out every field the exporter writes (Config.to_dict): a missing
// d_model silently taking parse_config's default would make the weights' shapes look wrong
// instead. (parse_config keeps Python's from_dict defaults: configs built in code rely on them.)
void check_required_fields(const json& raw, const std::string& where) {
  if (!raw.is_object()) return;  // parse_config says what is wrong
  if (!raw.contains("format_version"))
    fail(where, "no format_version; every config.json the exporter writes has one (this reader knows " +
         std::to_string(kConfigFormatVersion) + "): re-export the model, or add \"format_version\": " +
         std::to_string(kConfigFormatVersion));
  if (raw["format_version"] != kConfigFormatVersion) return;  // parse_config reports the version
  // A mistyped field is both unknown and missing: the unknown one is the better news.
  check_keys(raw, kKnownTop, where, nullptr);
  for (const auto& [name, known] : kKnownSections)
    if (auto it = raw.find(name); it != raw.end() && it->is_object()) check_keys(*it, known, where, name.c_str());
  std::vector<std::string> missing;
  auto need = [&](const json& obj, const std::string& prefix, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (!obj.contains(k)) missing.push_back(prefix + k);
  };
  need(raw, "", {"attention", "bidirectional", "d_model", "ema_ndim", "embedding", "ffn_dim", "final_norm_affine",
                 "hidden_dim", "n_layers", "norm", "norm_eps", "prenorm", "task", "tie_embeddings", "tokenizer",
                 "vocab_size", "z_dim"});
  auto section = [&](const char* name) -> const json* {
    auto it = raw.find(name);
    return it != raw.end() && it->is_object() ? &*it : nullptr;
  };
  if (const json* a = section("attention")) need(*a, "attention.", {"codebook_size", "quantize_window_keys", "window"});
  if (const json* e = section("embedding")) {
    need(*e, "embedding.", {"kind"});
    if (e->value("kind", json()) == "token") need(*e, "embedding.", {"scale"});
  }
  if (const json* c = section("classifier")) need(*c, "classifier.", {"activation", "hidden", "num_classes", "pooling"});
  if (const json* t = section("tokenizer")) {
    need(*t, "tokenizer.", {"kind"});
    const json kind = t->value("kind", json());
    if (kind == "bytes") need(*t, "tokenizer.", {"specials"});
    if (kind == "vocab") need(*t, "tokenizer.", {"tokens", "unk"});
    if (kind == "pixels") need(*t, "tokenizer.", {"mean", "std"});
  }
  if (!missing.empty())
    fail(where, "config field(s) " + detail::py_list_repr(missing) + " missing; a config.json must give every field "
         "the exporter writes (docs/file-formats.md §2): re-export the model, or add them");
}

}  // namespace

ModelConfig load_config(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::string why;
  int err = 0;
  const InputFile file = open_regular_file(path, why, err);
  if (file.fd() < 0) {
    if (err == ENOENT)
      throw LoadError(K::missing_file, where, "", "no such file; pass the config.json of a model directory made by the exporter");
    throw LoadError(K::io, where, "", "cannot open for reading (" + why + "); check the path and its permissions");
  }
  std::string text;
  // A config is a few KiB; 16 MiB is far more than any, and bounds what a wrong file costs.
  const ReadStatus status = read_all(file.fd(), size_t{16} << 20, text, err);
  if (status == ReadStatus::failed) throw LoadError(K::io, where, "", std::string("read failed (") + std::strerror(err) + "); check the file");
  if (status == ReadStatus::too_big)
    throw LoadError(K::bad_json, where, "", "is larger than 16 MiB, which no config.json is; pass the config.json of a model directory");
  if (detail::json_depth(text, kMaxConfigDepth) > kMaxConfigDepth) {
    throw LoadError(K::bad_json, where, "", "not valid JSON (nested deeper than " + std::to_string(kMaxConfigDepth) +
                    " levels); re-export the model");
  }
  json raw;
  try {
    raw = json::parse(text);
  } catch (const json::exception& err) {
    throw LoadError(K::bad_json, where, "", std::string("not valid JSON (") + err.what() + "); re-export the model");
  }
  check_required_fields(raw, where);
  return parse_config(raw, where);
}

// ---------------------------------------------------------------------------------------------
namespace {

// Norm(kind, d, eps, affine): parameters (weight, bias | scalar | weight), then batchnorm's buffers.
void add_norm(std::vector<ExpectedTensor>& out, const std::string& prefix, ModelConfig::Norm kind, int64_t d,
              bool affine) {
  using N = ModelConfig::Norm;
  if (affine) {
    if (kind == N::layernorm || kind == N::batchnorm) {
      out.push_back({prefix + "weight", {d}});
      out.push_back({prefix + "bias", {d}});
    } else if (kind == N::rmsnorm) {
      out.push_back({prefix + "weight", {d}});
    } else {
      out.push_back({prefix + "scalar", {1}});
    }
  }
  if (kind == N::batchnorm) {
    out.push_back({prefix + "running_mean", {d}});
    out.push_back({prefix + "running_var", {d}});
  }
}

void add_linear(std::vector<ExpectedTensor>& out, const std::string& prefix, int64_t in, int64_t outd, bool bias) {
  out.push_back({prefix + "weight", {outd, in}});
  if (bias) out.push_back({prefix + "bias", {outd}});
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg) {
  // The order of torch's state_dict(): a module's own parameters, then its own buffers, then
  // its children in the order model.py assigns them.
  const int64_t d = cfg.d_model, h = cfg.hidden_dim, e = cfg.z_dim, n = cfg.ema_ndim;
  std::vector<ExpectedTensor> out;
  if (cfg.embedding.kind == EmbeddingConfig::Kind::token) {
    out.push_back({"embed.weight", {cfg.vocab_size, d}});
  } else {
    out.push_back({"embed.weight", {d}});
    out.push_back({"embed.bias", {d}});
  }
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    const std::string mix = "layers." + std::to_string(i) + ".mix.";
    out.push_back({mix + "qk_scale", {2, e}});
    out.push_back({mix + "qk_offset", {2, e}});
    out.push_back({mix + "rel_bias", {cfg.rel_bias_len()}});
    out.push_back({mix + "codebook", {cfg.attention.codebook_size, e}});
    add_norm(out, mix + "norm.", cfg.norm, d, true);
    const int64_t dp = cfg.ema_channels();
    for (const char* p : {"delta", "alpha", "beta"}) out.push_back({mix + "ema." + p, {dp, n, 1}});
    out.push_back({mix + "ema.gamma", {dp, n}});
    out.push_back({mix + "ema.omega", {d}});
    add_linear(out, mix + "v_proj.", d, h, true);
    add_linear(out, mix + "mx_proj.", d, cfg.mx_dim(), true);
    add_linear(out, mix + "h_proj.", h, d, true);
    if (cfg.ffn_dim > 0) {
      const std::string ffn = "layers." + std::to_string(i) + ".ffn.";
      add_norm(out, ffn + "norm.", cfg.norm, d, true);
      add_linear(out, ffn + "fc1.", d, cfg.ffn_dim, true);
      add_linear(out, ffn + "fc2.", cfg.ffn_dim, d, true);
    }
  }
  if (cfg.prenorm) add_norm(out, "final_norm.", cfg.norm, d, cfg.final_norm_affine);
  if (cfg.task == ModelConfig::Task::lm && !cfg.tie_embeddings) {
    add_linear(out, "lm_head.", d, cfg.vocab_size, false);
  }
  if (cfg.task == ModelConfig::Task::classify && cfg.classifier) {
    add_linear(out, "classifier.hidden.", d, cfg.classifier->hidden, true);
    add_linear(out, "classifier.out.", cfg.classifier->hidden, cfg.classifier->num_classes, false);
  }
  return out;
}

}  // namespace longvq
