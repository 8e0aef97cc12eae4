// config.json: parity with the Python Config (fingerprint, expected tensors, every range check
// and its message), plus the checks the C++ reader adds (JSON types, size caps).
//
// The Python answers live in config_golden.jsonl and config_errors.jsonl next to this file;
// regenerate them with  /usr/bin/python3 tests/loaders/make_golden.py  (see that script).
#include <sys/stat.h>

#include <fstream>

#include "loaders/config.h"
#include "test_util.h"

using namespace longvq;
using namespace longvq::test;
using K = LoadError::Kind;
using json = nlohmann::json;

namespace {

std::vector<json> read_jsonl(const std::string& name) {
  std::ifstream in(golden_dir() / name);
  REQUIRE(in.good());
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

json fixture_config(const std::string& name) {
  std::ifstream in(fixtures_dir() / name / "config.json");
  return json::parse(in);
}

LoadError parse_error(const json& raw) {
  return catch_load_error([&] { (void)parse_config(raw, "cfg.json"); });
}

}  // namespace

TEST_CASE("every fixture's config parses, with Python's fingerprint and tensor list", "[config]") {
  const auto golden = read_jsonl("config_golden.jsonl");
  size_t fixtures = 0;
  for (const auto& g : golden) {
    if (!g.contains("fixture")) continue;
    ++fixtures;
    const std::string name = g["fixture"];
    INFO("fixture " << name);
    const ModelConfig cfg = load_config(fixtures_dir() / name / "config.json");
    CHECK(cfg.fingerprint() == g["fingerprint"].get<std::string>());
    std::vector<std::pair<std::string, std::vector<int64_t>>> want, got;
    for (const auto& t : g["tensors"]) want.emplace_back(t[0], t[1].get<std::vector<int64_t>>());
    for (const auto& t : expected_tensors(cfg)) got.emplace_back(t.name, t.shape);
    CHECK(got == want);
  }
  INFO("a fixture without a line in config_golden.jsonl: rerun tests/loaders/make_golden.py");
  CHECK(fixtures == fixture_names().size());
  CHECK(fixtures >= 7);
}

TEST_CASE("expected_tensors and fingerprint match Python over a grid of configs", "[config]") {
  // Every norm × prenorm × final_norm_affine × tie × FFN for LMs; every norm, embedding and
  // direction for classifiers; the order is torch's state_dict order.
  size_t configs = 0;
  for (const auto& g : read_jsonl("config_golden.jsonl")) {
    if (!g.contains("config")) continue;
    ++configs;
    INFO("config " << g["config"].dump());
    const ModelConfig cfg = parse_config(g["config"], "golden");
    CHECK(cfg.fingerprint() == g["fingerprint"].get<std::string>());
    std::vector<std::pair<std::string, std::vector<int64_t>>> want, got;
    for (const auto& t : g["tensors"]) want.emplace_back(t[0], t[1].get<std::vector<int64_t>>());
    for (const auto& t : expected_tensors(cfg)) got.emplace_back(t.name, t.shape);
    CHECK(got == want);
  }
  CHECK(configs >= 80);
}

TEST_CASE("each range check refuses as Python does, with Python's message", "[config]") {
  size_t cases = 0;
  for (const auto& g : read_jsonl("config_errors.jsonl")) {
    ++cases;
    INFO("config " << g["config"].dump());
    INFO("python: " << g["error"].get<std::string>());
    const LoadError e = parse_error(g["config"]);
    INFO("c++: " << e.what());
    CHECK(to_string(e.kind()) == g["kind"].get<std::string>());
    CHECK(e.file() == "cfg.json");
    if (g["exact"].get<bool>()) {
      CHECK(std::string(e.what()) == "cfg.json: " + g["error"].get<std::string>());
    } else {
      CHECK(contains(e.what(), g["cxx"].get<std::string>()));
    }
  }
  CHECK(cases >= 40);
}

TEST_CASE("absent fields take Python's defaults", "[config]") {
  const ModelConfig c = parse_config(json::object(), "cfg");
  CHECK(c.fingerprint() == "longvq-v1:V=256,d=64,h=128,e=32,N=16,f=128,L=2,S=64,W=32,qwk=1,norm=layernorm,prenorm=1,bidir=0");
  CHECK(c.norm_eps == 1e-5);
  CHECK(c.final_norm_affine);
  CHECK(c.task == ModelConfig::Task::lm);
  CHECK(c.embedding.kind == EmbeddingConfig::Kind::token);
  CHECK(c.embedding.scale == 1.0);
  CHECK(c.tie_embeddings);
  CHECK_FALSE(c.classifier.has_value());
  CHECK(c.tokenizer.kind == TokenizerConfig::Kind::bytes);
  CHECK(c.tokenizer.specials.empty());
  CHECK_FALSE(c.tokenizer.unk.has_value());
  CHECK(c.tokenizer.mean == 0.5);
  CHECK(c.tokenizer.std == 0.5);
  // A classifier section with only some fields gets the others' defaults.
  json raw = fixture_config("cls_batchnorm_tokens");
  raw["classifier"] = {{"num_classes", 3}};
  const ModelConfig k = parse_config(raw, "cfg");
  REQUIRE(k.classifier.has_value());
  CHECK(k.classifier->hidden == 64);
  CHECK(k.classifier->pooling == "mean");
  CHECK(k.classifier->activation == "gelu");
}

TEST_CASE("derived sizes", "[config]") {
  const ModelConfig lm = load_config(fixtures_dir() / "lm_bytes_layernorm_tied" / "config.json");
  CHECK(lm.mx_dim() == 2 * 16 + 8 + 24);
  CHECK(lm.ema_channels() == 16);
  CHECK(lm.rel_bias_len() == 5);
  CHECK(lm.tokenizer.specials == std::vector<std::string>{"<bos>"});
  CHECK(lm.embedding.scale == 4.0);
  CHECK_FALSE(lm.final_norm_affine);
  const ModelConfig cls = load_config(fixtures_dir() / "cls_pixels_postnorm_rawwin" / "config.json");
  CHECK(cls.ema_channels() == 32);
  CHECK(cls.rel_bias_len() == 9);
  CHECK(cls.embedding.kind == EmbeddingConfig::Kind::real);
  CHECK(cls.tokenizer.kind == TokenizerConfig::Kind::pixels);
  CHECK(cls.tokenizer.mean == 0.286);
  CHECK(cls.tokenizer.std == 0.353);
  CHECK_FALSE(cls.attention.quantize_window_keys);
}

TEST_CASE("format_version is checked before anything else", "[config]") {
  // A newer config may carry fields this reader does not know: the version is the real news.
  const LoadError e = parse_error(json{{"format_version", 7}, {"new_field", 1}});
  CHECK(e.kind() == K::unknown_version);
  CHECK(contains(e.what(), "config format_version 7 is not supported (this reader knows 1)"));
  CHECK(parse_error(json{{"format_version", "1"}}).kind() == K::bad_config);
}

TEST_CASE("JSON types are checked", "[config]") {
  const json base = fixture_config("lm_bytes_layernorm_tied");
  struct Case {
    const char* field;
    json value;
    const char* fragment;
  };
  const Case cases[] = {
      {"d_model", "16", "config field d_model must be an integer, got '16'"},
      {"d_model", 16.0, "config field d_model must be an integer, got 16.0"},
      {"d_model", true, "config field d_model must be an integer, got True"},
      {"n_layers", nullptr, "config field n_layers must be an integer, got None"},
      {"prenorm", 1, "config field prenorm must be true or false, got 1"},
      {"norm_eps", "1e-5", "config field norm_eps must be a number, got '1e-5'"},
      {"d_model", json(uint64_t(1) << 63), "far more than this engine supports"},
      {"d_model", json(int64_t(1) << 40), "config field d_model is 1099511627776, outside what this engine supports"},
  };
  for (const auto& c : cases) {
    json raw = base;
    raw[c.field] = c.value;
    INFO(c.field << " = " << c.value.dump());
    const LoadError e = parse_error(raw);
    INFO(e.what());
    CHECK(e.kind() == K::bad_config);
    CHECK(contains(e.what(), c.fragment));
  }
  json raw = base;
  raw["tokenizer"]["specials"] = {1};
  CHECK(contains(parse_error(raw).what(), "config field tokenizer.specials must be a list of strings, got [1]"));
  raw = fixture_config("cls_batchnorm_tokens");
  raw["tokenizer"]["unk"] = 5;
  CHECK(contains(parse_error(raw).what(), "config field tokenizer.unk must be a string or null, got 5"));
  raw = base;
  raw["attention"]["window"] = -1.5;
  CHECK(contains(parse_error(raw).what(), "config field attention.window must be an integer, got -1.5"));
  CHECK(contains(parse_error(json::array()).what(), "config is not a JSON object"));
}

TEST_CASE("an lm with a classifier section keeps it (as Python does)", "[config]") {
  json raw = fixture_config("lm_scalenorm_w0_s1");
  raw["classifier"] = {{"num_classes", 1}};  // not checked for an lm
  const ModelConfig c = parse_config(raw, "cfg");
  REQUIRE(c.classifier.has_value());
  CHECK(c.classifier->num_classes == 1);
  for (const auto& t : expected_tensors(c)) CHECK(t.name.rfind("classifier.", 0) != 0);
}

TEST_CASE("ModelConfig::validate applies the same checks to a config built in code", "[config]") {
  ModelConfig c;
  CHECK_NOTHROW(c.validate());
  c.attention.window = -2;
  const LoadError e = catch_load_error([&] { c.validate("mine"); });
  CHECK(std::string(e.what()) == "mine: attention.window must be >= 0, got -2");
  c = ModelConfig{};
  c.norm_eps = 0.0;
  CHECK(std::string(catch_load_error([&] { c.validate("mine"); }).what()) == "mine: norm_eps must be > 0, got 0.0");
  c = ModelConfig{};
  c.task = ModelConfig::Task::classify;
  CHECK(contains(catch_load_error([&] { c.validate(); }).what(), "needs a 'classifier' section"));
}

TEST_CASE("load_config: missing file, bad JSON, huge numbers", "[config]") {
  TempDir tmp;
  const LoadError missing = catch_load_error([&] { (void)load_config(tmp / "config.json"); });
  CHECK(missing.kind() == K::missing_file);
  write_file(tmp / "config.json", "{\"d_model\": 16,");
  const LoadError bad = catch_load_error([&] { (void)load_config(tmp / "config.json"); });
  CHECK(bad.kind() == K::bad_json);
  CHECK(contains(bad.what(), (tmp / "config.json").string() + ": not valid JSON ("));
  CHECK(contains(bad.what(), "re-export the model"));
  write_file(tmp / "config.json", "{\"norm_eps\": 1e400}");
  CHECK(catch_load_error([&] { (void)load_config(tmp / "config.json"); }).kind() == K::bad_json);
  write_file(tmp / "config.json", std::string(5000, '[') + std::string(5000, ']'));
  CHECK(catch_load_error([&] { (void)load_config(tmp / "config.json"); }).kind() == K::bad_json);
  write_file(tmp / "config.json", "{\"format_version\": 1, \"n_layers\": 3, \"oops\": 1}");
  const LoadError unk = catch_load_error([&] { (void)load_config(tmp / "config.json"); });
  CHECK(unk.kind() == K::bad_config);
  CHECK(contains(unk.what(), "unknown config field(s) ['oops']"));
}

TEST_CASE("load_config: a file must give format_version and every field the exporter writes", "[config]") {
  TempDir tmp;
  for (const char* fixture : {"lm_bytes_layernorm_tied", "cls_pixels_postnorm_rawwin", "cls_batchnorm_tokens"}) {
    const json full = fixture_config(fixture);
    // Every field the file has, one at a time (a section's fields too).
    std::vector<std::pair<std::string, std::string>> fields;
    for (auto it = full.begin(); it != full.end(); ++it) {
      fields.emplace_back(it.key(), "");
      if (it->is_object())
        for (auto f = it->begin(); f != it->end(); ++f) fields.emplace_back(it.key(), f.key());
    }
    for (const auto& [top, sub] : fields) {
      json raw = full;
      if (sub.empty()) raw.erase(top);
      else raw[top].erase(sub);
      const std::string name = sub.empty() ? top : top + "." + sub;
      INFO(fixture << " without " << name);
      write_file(tmp / "config.json", raw.dump());
      const LoadError e = catch_load_error([&] { (void)load_config(tmp / "config.json"); });
      CHECK(e.kind() == K::bad_config);
      if (name == "format_version") CHECK(contains(e.what(), "no format_version"));
      else if (name == "classifier") CHECK(contains(e.what(), "needs a 'classifier' section"));
      else CHECK(contains(e.what(), "config field(s) ['" + name + "'] missing"));
    }
  }
  // A mistyped field is reported as unknown (the better news) rather than as missing.
  json raw = fixture_config("lm_bytes_layernorm_tied");
  raw["d_modle"] = raw["d_model"];
  raw.erase("d_model");
  write_file(tmp / "config.json", raw.dump());
  CHECK(contains(catch_load_error([&] { (void)load_config(tmp / "config.json"); }).what(), "unknown config field(s) ['d_modle']"));
  // A config.json that is a FIFO is refused without waiting for a writer.
  fs::remove(tmp / "config.json");
  REQUIRE(::mkfifo((tmp / "config.json").c_str(), 0644) == 0);
  const LoadError fifo = catch_load_error([&] { (void)load_config(tmp / "config.json"); });
  CHECK(fifo.kind() == K::io);
  CHECK(contains(fifo.what(), "FIFO"));
}
