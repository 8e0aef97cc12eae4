// Model directories: every fixture loads in both modes and holds exactly expected_tensors();
// copies with a tensor dropped, added, reshaped or retyped are refused as Python refuses them.
#include <sys/stat.h>

#include <bit>
#include <chrono>
#include <set>

#include "loaders/model_file.h"
#include "test_util.h"

using namespace longvq;
using namespace longvq::test;
using K = LoadError::Kind;
using json = nlohmann::json;

namespace {

const LoadMode kModes[] = {LoadMode::mmap, LoadMode::read};

// A copy of fixture `name` in `dir` whose tensors went through `edit` first.
template <typename Edit>
void write_variant(const TempDir& dir, const std::string& name, Edit edit,
                   std::map<std::string, std::string> metadata = {{"format", "longvq-model"}, {"format_version", "1"}}) {
  const fs::path src = fixtures_dir() / name;
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  SafetensorsFile f(src / "model.safetensors", LoadMode::read);
  std::vector<Entry> entries = entries_of(f);
  edit(entries, metadata);
  write_file(dir / "model.safetensors", make_file(entries, metadata));
}

LoadError load_error_of(const fs::path& dir, LoadMode mode = LoadMode::mmap) {
  return catch_load_error([&] { (void)load_model_dir(dir, mode); });
}

}  // namespace

TEST_CASE("every fixture loads in both modes and holds exactly expected_tensors", "[model_file]") {
  const auto names = fixture_names();
  REQUIRE(names.size() >= 7);
  for (const auto& name : names) {
    for (LoadMode mode : kModes) {
      INFO("fixture " << name << (mode == LoadMode::mmap ? " (mmap)" : " (read)"));
      const ModelFile m = load_model_dir(fixtures_dir() / name, mode);
      CHECK(m.weights.metadata().at("format") == "longvq-model");
      std::set<std::pair<std::string, std::vector<int64_t>>> in_file, expected;
      for (const auto& [n, t] : m.weights.tensors()) {
        in_file.emplace(n, t.shape);
        // export --bf16 stores the 2-D "*.weight" matrices as BF16, everything else F32
        const bool bf16 = name == "lm_bf16_matrices" && t.shape.size() == 2 && n.ends_with(".weight");
        CHECK(t.dtype == (bf16 ? FileDType::BF16 : FileDType::F32));
      }
      for (const auto& t : expected_tensors(m.config)) expected.emplace(t.name, t.shape);
      CHECK(in_file == expected);
      CHECK(in_file.size() == expected_tensors(m.config).size());  // no duplicate names expected
    }
  }
}

TEST_CASE("a missing tensor is refused, naming it and its shape", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "lm_bytes_layernorm_tied", [](std::vector<Entry>& e, auto&) {
    std::erase_if(e, [](const Entry& x) {
      return x.name == "layers.1.mix.codebook" || x.name == "layers.1.mix.rel_bias";
    });
  });
  for (LoadMode mode : kModes) {
    const LoadError err = load_error_of(tmp.path(), mode);
    CHECK(err.kind() == K::missing_tensor);
    CHECK(err.tensor() == "layers.1.mix.codebook");
    CHECK(err.what() == (tmp / "model.safetensors").string() +
                            ": tensor 'layers.1.mix.codebook' (shape [8, 8]) is missing (2 missing in all); "
                            "the file does not match config.json");
  }
}

TEST_CASE("an unexpected tensor is refused", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "cls_batchnorm_tokens", [](std::vector<Entry>& e, auto&) {
    e.push_back({"lm_head.weight", "F32", {40, 16}, std::string(40 * 16 * 4, '\0')});
  });
  const LoadError err = load_error_of(tmp.path());
  CHECK(err.kind() == K::unexpected_tensor);
  CHECK(err.tensor() == "lm_head.weight");
  CHECK(contains(err.what(), "unexpected tensor 'lm_head.weight' for this config.json (1 in all); "
                             "the file does not match config.json"));
}

TEST_CASE("a wrong shape is refused with both shapes", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "lm_bytes_layernorm_tied", [](std::vector<Entry>& e, auto&) {
    for (auto& x : e) {
      if (x.name == "layers.0.mix.rel_bias") {
        x.shape = {7};
        x.bytes = std::string(28, '\0');
      }
    }
  });
  for (LoadMode mode : kModes) {
    const LoadError err = load_error_of(tmp.path(), mode);
    CHECK(err.kind() == K::shape_mismatch);
    CHECK(err.tensor() == "layers.0.mix.rel_bias");
    CHECK(contains(err.what(), "tensor 'layers.0.mix.rel_bias' has shape [7], config.json implies [5]; "
                               "the file does not match config.json"));
  }
  // Same element count, other layout: still refused.
  write_variant(tmp, "lm_rmsnorm_postnorm_untied", [](std::vector<Entry>& e, auto&) {
    for (auto& x : e) {
      if (x.name == "layers.1.mix.v_proj.weight") x.shape = {16, 24};
    }
  });
  CHECK(contains(load_error_of(tmp.path()).what(),
                 "tensor 'layers.1.mix.v_proj.weight' has shape [16, 24], config.json implies [24, 16]"));
}

TEST_CASE("a NaN or infinite weight is refused, naming the tensor and element", "[model_file]") {
  TempDir tmp;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    write_variant(tmp, "lm_bytes_layernorm_tied", [bad](std::vector<Entry>& e, auto&) {
      for (auto& x : e)
        if (x.name == "layers.0.mix.rel_bias") std::memcpy(x.bytes.data() + 8, &bad, 4);  // element 2
    });
    for (LoadMode mode : kModes) {
      const LoadError err = load_error_of(tmp.path(), mode);
      CHECK(err.kind() == K::bad_value);
      CHECK(err.tensor() == "layers.0.mix.rel_bias");
      CHECK(contains(err.what(), "at element 2; the file is corrupt, re-export the model"));
    }
  }
}

TEST_CASE("a config.json that disagrees with the weights is refused", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "lm_scalenorm_w0_s1", [](auto&, auto&) {});
  CHECK_NOTHROW(load_model_dir(tmp.path()));
  std::string cfg = read_file(tmp / "config.json");
  cfg.replace(cfg.find("\"n_layers\": 2"), 13, "\"n_layers\": 3");
  write_file(tmp / "config.json", cfg);
  const LoadError err = load_error_of(tmp.path());
  CHECK(err.kind() == K::missing_tensor);
  CHECK(contains(err.what(), "tensor 'layers.2."));
}

TEST_CASE("weights may be BF16, not other dtypes", "[model_file]") {
  TempDir tmp;
  // As the exporter's --bf16: matrices BF16 (truncated here), codebooks and vectors F32.
  write_variant(tmp, "lm_rmsnorm_postnorm_untied", [](std::vector<Entry>& e, auto&) {
    for (auto& x : e) {
      if (x.shape.size() == 2 && x.name.find("codebook") == std::string::npos) {
        std::string b;
        for (size_t i = 0; i < x.bytes.size(); i += 4) b += x.bytes.substr(i + 2, 2);  // high halves
        x.dtype = "BF16";
        x.bytes = b;
      }
    }
  });
  for (LoadMode mode : kModes) {
    const ModelFile m = load_model_dir(tmp.path(), mode);
    const TensorInfo& w = m.weights.at("lm_head.weight");
    CHECK(w.dtype == FileDType::BF16);
    const SafetensorsFile orig(fixtures_dir() / "lm_rmsnorm_postnorm_untied" / "model.safetensors");
    const auto want = to_f32(orig.at("lm_head.weight"));
    const auto got = to_f32(w);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const uint32_t bits = std::bit_cast<uint32_t>(want[i]) & 0xffff0000u;
      CHECK(std::bit_cast<uint32_t>(got[i]) == bits);
    }
  }
  write_variant(tmp, "lm_rmsnorm_postnorm_untied", [](std::vector<Entry>& e, auto&) {
    for (auto& x : e) {
      if (x.name == "layers.0.mix.codebook") x.dtype = "I32";  // same bytes, another dtype
    }
  });
  const LoadError err = load_error_of(tmp.path());
  CHECK(err.kind() == K::wrong_dtype);
  CHECK(contains(err.what(), "tensor 'layers.0.mix.codebook' is I32; model weights must be F32 or BF16"));
}

TEST_CASE("metadata: another format or version is refused, none is fine", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "cls_rmsnorm_w0_s1", [](auto&, auto& meta) { meta["format"] = "longvq-state"; });
  LoadError err = load_error_of(tmp.path());
  CHECK(err.kind() == K::bad_format);
  CHECK(contains(err.what(), "metadata format is 'longvq-state', not 'longvq-model'"));
  write_variant(tmp, "cls_rmsnorm_w0_s1", [](auto&, auto& meta) { meta["format_version"] = "2"; });
  err = load_error_of(tmp.path());
  CHECK(err.kind() == K::unknown_version);
  CHECK(contains(err.what(), "metadata format_version is '2' but config.json says 1"));
  write_variant(tmp, "cls_rmsnorm_w0_s1", [](auto&, auto& meta) { meta.clear(); });
  CHECK_NOTHROW(load_model_dir(tmp.path()));
}

TEST_CASE("a config implying far more tensors than the file holds fails fast", "[model_file]") {
  TempDir tmp;
  write_variant(tmp, "lm_bytes_layernorm_tied", [](auto&, auto&) {});
  json cfg = json::parse(read_file(tmp / "config.json"));
  cfg["n_layers"] = 1000000;  // listing its 23 million tensors took 14-45 s and 4.6 GB
  write_file(tmp / "config.json", cfg.dump());
  const auto t0 = std::chrono::steady_clock::now();
  const LoadError err = load_error_of(tmp.path());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
  CHECK(err.kind() == K::missing_tensor);
  CHECK(contains(err.what(), "config.json implies 23000001 tensors (n_layers 1000000), the file holds 47"));
  cfg["n_layers"] = 3;  // a few missing still get the exact message
  write_file(tmp / "config.json", cfg.dump());
  CHECK(contains(load_error_of(tmp.path()).what(), "is missing (23 missing in all)"));
}

TEST_CASE("a model path that is not a directory says what it is", "[model_file]") {
  TempDir tmp;
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0644) == 0);
  CHECK(contains(load_error_of(tmp / "fifo").what(), "is a FIFO (named pipe), not a directory"));
  CHECK(contains(load_error_of("/dev/null").what(), "is a character device, not a directory"));
  fs::create_symlink(tmp / "b", tmp / "a");
  fs::create_symlink(tmp / "a", tmp / "b");
  const LoadError loop = load_error_of(tmp / "a");
  CHECK(loop.kind() == K::io);
  CHECK(contains(loop.what(), "is a symbolic link loop"));
  fs::create_directory(tmp / "m");
  fs::copy_file(fixtures_dir() / "lm_bytes_layernorm_tied" / "config.json", tmp / "m" / "config.json");
  fs::create_directory(tmp / "m" / "model.safetensors");
  CHECK(contains(load_error_of(tmp / "m").what(), "model.safetensors is a directory, not a regular file"));
}

TEST_CASE("missing directory or files say what to pass", "[model_file]") {
  TempDir tmp;
  LoadError err = load_error_of(tmp / "nope");
  CHECK(err.kind() == K::missing_file);
  CHECK(contains(err.what(), "no such directory; pass a model directory made by the exporter"));
  write_file(tmp / "file", "x");
  CHECK(contains(load_error_of(tmp / "file").what(), "not a directory; pass a model directory"));
  err = load_error_of(tmp.path());
  CHECK(err.kind() == K::missing_file);
  CHECK(std::string(err.what()) == tmp.path().string() + ": no config.json; pass a model directory made by the exporter");
  fs::copy_file(fixtures_dir() / "lm_bytes_layernorm_tied" / "config.json", tmp / "config.json");
  err = load_error_of(tmp.path());
  CHECK(err.kind() == K::missing_file);
  CHECK(contains(err.what(), "no model.safetensors; the model directory is incomplete"));
  // A truncated weights file is the reader's error.
  const std::string full = read_file(fixtures_dir() / "lm_bytes_layernorm_tied" / "model.safetensors");
  write_file(tmp / "model.safetensors", full.substr(0, full.size() - 100));
  for (LoadMode mode : kModes) {
    err = load_error_of(tmp.path(), mode);
    CHECK(err.kind() == K::out_of_range);
    CHECK(contains(err.what(), "the file is truncated or corrupt"));
  }
}
