// longvq info: what a model is (config), how big (parameters, weight bytes), what a decoding
// state costs (bytes per sequence, by formula) and what memory its graphs plan.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/longvq.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/system_info.h"

namespace longvq::cli {

namespace {

struct InfoOptions {
  ModelFlags model;
  int64_t chunk = 512;
  int64_t length = 4096;
  bool json = false;
};

std::string tokenizer_text(const TokenizerConfig& t) {
  switch (t.kind) {
    case TokenizerConfig::Kind::bytes: {
      std::string s = "bytes (ids 0..255 = UTF-8 bytes";
      for (size_t i = 0; i < t.specials.size(); ++i) s += strf(", %s = %zu", t.specials[i].c_str(), 256 + i);
      return s + ")";
    }
    case TokenizerConfig::Kind::vocab: {
      std::string s = strf("vocab (%zu whitespace-separated tokens:", t.tokens.size());
      for (size_t i = 0; i < t.tokens.size() && i < 12; ++i) s += " " + t.tokens[i];
      if (t.tokens.size() > 12) s += " ...";
      return s + (t.unk ? "; unknown words → " + *t.unk : "; no unknown-word token") + ")";
    }
    case TokenizerConfig::Kind::pixels:
      return strf("pixels (v in 0..255 → (v/255 − %g) / %g)", t.mean, t.std);
  }
  return "?";
}

int run_info(const InfoOptions& o) {
  auto model = load_model(o.model);
  const ModelConfig& c = model->config();
  const bool lm = c.task == ModelConfig::Task::lm;

  check_activation_memory(c, 1, o.length, "--length " + group_digits(o.length));
  if (lm) check_activation_memory(c, 1, o.chunk, "--chunk " + group_digits(o.chunk));
  // Build every graph kind this model supports at batch 1 (one tiny run each), so that the
  // Session's plans can be described.
  SessionOptions so;
  so.max_batch = 1;
  so.max_chunk = o.chunk;
  so.max_length = o.length;
  so.threads = o.model.threads;
  Session session(model, so);
  size_t state_bytes = 0;
  struct Plan { std::string kind; int64_t max_seq; MemoryPlan plan; };
  std::vector<Plan> plans;
  const std::vector<int32_t> one_len = {1};
  if (c.embedding.kind == EmbeddingConfig::Kind::real) session.forward(std::vector<float>{0.0f}, one_len, 1);
  else session.forward(std::vector<int32_t>{0}, one_len, 1);
  plans.push_back({"sequence", o.length, plan_for(*model, GraphKind::sequence, 1, o.length)});
  if (lm) {
    State state = session.new_state(1);
    state_bytes = state.bytes_per_sequence();
    session.prefill(state, std::vector<int32_t>{0});
    session.decode(state, std::vector<int32_t>{0});
    plans.push_back({"prefill", o.chunk, plan_for(*model, GraphKind::prefill, 1, o.chunk)});
    plans.push_back({"decode", 1, plan_for(*model, GraphKind::decode, 1, 1)});
  }

  std::ifstream cfg_file(model->dir() / "config.json");
  nlohmann::ordered_json raw = nlohmann::ordered_json::parse(cfg_file, nullptr, /*allow_exceptions=*/false);
  std::error_code ec;
  const auto file_bytes = std::filesystem::file_size(model->dir() / "model.safetensors", ec);

  if (o.json) {
    nlohmann::ordered_json j = {{"model", model->dir().string()}, {"config", raw}, {"fingerprint", c.fingerprint()},
                        {"parameters", model->parameter_count()}, {"weight_bytes", model->weight_bytes()},
                        {"bf16_matrices", model->bf16_matrices()},
                        {"q8_matrices", model->q8_matrices()},
                        {"file_bytes", ec ? 0 : file_bytes}};
    if (lm) j["state_bytes_per_sequence"] = state_bytes;
    nlohmann::ordered_json p = nlohmann::ordered_json::array();
    for (const Plan& x : plans)
      p.push_back({{"graph", x.kind}, {"max_batch", 1}, {"max_length", x.max_seq}, {"arena_bytes", x.plan.arena_bytes},
                   {"naive_bytes", x.plan.naive_bytes}, {"in_place", x.plan.in_place}});
    j["plans"] = p;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    const auto& a = c.attention;
    std::printf("model         %s\n", model->dir().string().c_str());
    std::printf("fingerprint   %s\n", c.fingerprint().c_str());
    if (lm) std::printf("task          lm: causal language model, %lld-token vocabulary\n", static_cast<long long>(c.vocab_size));
    else std::printf("task          classify: %s classifier, %lld classes, mean pooling, head hidden %lld (gelu)\n",
                     c.bidirectional ? "bidirectional" : "causal", static_cast<long long>(c.classifier->num_classes),
                     static_cast<long long>(c.classifier->hidden));
    std::printf("tokenizer     %s\n", tokenizer_text(c.tokenizer).c_str());
    if (c.embedding.kind == EmbeddingConfig::Kind::token)
      std::printf("embedding     token, scale %g%s\n", c.embedding.scale,
                  lm ? (c.tie_embeddings ? ", tied to the output head" : ", separate output head") : "");
    else std::printf("embedding     real (one value per position, linear to d_model)\n");
    std::printf("layers        %lld × [d_model %lld, hidden_dim h %lld, z_dim e %lld, ema_ndim N %lld, ffn_dim %lld]\n",
                static_cast<long long>(c.n_layers), static_cast<long long>(c.d_model),
                static_cast<long long>(c.hidden_dim), static_cast<long long>(c.z_dim),
                static_cast<long long>(c.ema_ndim), static_cast<long long>(c.ffn_dim));
    std::printf("attention     codebook S %lld, window W %lld, window keys %s%s\n",
                static_cast<long long>(a.codebook_size), static_cast<long long>(a.window),
                a.quantize_window_keys ? "quantized" : "raw", c.bidirectional ? ", bidirectional" : ", causal");
    std::printf("norm          %s, %s, eps %g%s\n", std::string(to_string(c.norm)).c_str(),
                c.prenorm ? "prenorm" : "postnorm", c.norm_eps,
                c.final_norm_affine ? "" : ", final norm without affine");
    std::printf("parameters    %s\n", group_digits(model->parameter_count()).c_str());
    const std::string as_run =
        model->q8_matrices()
            ? "int8 q8_0 (blocks of 32, f32 scales) for " + std::to_string(model->q8_matrices()) +
                  " matrices, f32 for the rest"
        : model->bf16_matrices() ? "bf16 for " + std::to_string(model->bf16_matrices()) + " matrices, f32 for the rest"
                                 : "f32";
    std::printf("weights       %s bytes as run (%s)%s\n", group_digits(static_cast<int64_t>(model->weight_bytes())).c_str(),
                as_run.c_str(),
                ec ? "" : ("; file " + group_digits(static_cast<int64_t>(file_bytes)) + " bytes").c_str());
    if (model->prepared_bytes())
      std::printf("              + %s bytes: weights repacked once at load into the %s kernels' own layout\n",
                  group_digits(static_cast<int64_t>(model->prepared_bytes())).c_str(),
                  backend_kind_name(model->options().backend));
    if (lm) {
      std::printf("state         %s bytes per sequence, whatever the context length\n",
                  group_digits(static_cast<int64_t>(state_bytes)).c_str());
      std::printf("              = %s\n", state_bytes_formula_text(c).c_str());
      if (state_bytes_formula(c) != state_bytes)
        std::printf("              (the formula gives %zu: the engine's state differs from docs/file-formats.md)\n",
                    state_bytes_formula(c));
    } else {
      std::printf("state         none (a bidirectional classifier reads whole sequences)\n");
    }
    std::printf("memory plans  batch 1 (arena: every activation at a fixed offset; naive: each in its own buffer)\n");
    for (const Plan& x : plans)
      std::printf("  %-9s length <= %-6lld arena %12s bytes (%s), naive %s bytes, %d in place\n", x.kind.c_str(),
                  static_cast<long long>(x.max_seq), group_digits(static_cast<int64_t>(x.plan.arena_bytes)).c_str(),
                  human_bytes(static_cast<double>(x.plan.arena_bytes)).c_str(),
                  group_digits(static_cast<int64_t>(x.plan.naive_bytes)).c_str(), x.plan.in_place);
    if (!o.model.verbose) std::printf("              (-v prints every tensor of each plan)\n");
  }
  if (o.model.verbose) std::printf("\n%s", session.describe_plans().c_str());
  return kExitOk;
}

}  // namespace

Command add_info(CLI::App& root) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* app = root.add_subcommand("info", "Show a model's config, parameter count, state size and memory plans");
  app->description(app->get_description() + ".\n\n" +
      "Describe a model: its config, parameter count, weight bytes, the size of one sequence's decoding state\n"
      "(causal LMs; with the formula it follows) and the memory plan of every graph kind it supports at batch 1\n"
      "(sequence; for LMs also prefill and decode). -v prints each plan tensor by tensor.");
  add_model_flags(*app, o->model);
  app->add_option("--chunk", o->chunk, "Prefill chunk the prefill plan is made for")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_option("--length", o->length, "Sequence length the sequence plan is made for")
      ->capture_default_str()->check(integer_in(1, kMaxSize));
  app->add_flag("--json", o->json, "Print everything as one JSON object");
  app->footer(
      "Examples:\n"
      "  longvq info\n"
      "  longvq info -m tests/fixtures/cls_pixels_postnorm_rawwin --length 784 -v");
  return {app, [o] { return run_info(*o); }};
}

}  // namespace longvq::cli
