#include "engine/runtime/longvq_graph.h"

#include <cmath>
#include <stdexcept>

#include "engine/runtime/state_layout.h"

namespace longvq {

const char* graph_kind_name(GraphKind k) {
  switch (k) {
    case GraphKind::sequence: return "sequence";
    case GraphKind::prefill: return "prefill";
    case GraphKind::decode: return "decode";
  }
  return "?";
}

static_assert(static_cast<int>(ModelConfig::Norm::batchnorm) == static_cast<int>(NormKind::batchnorm) &&
              static_cast<int>(ModelConfig::Norm::scalenorm) == static_cast<int>(NormKind::scalenorm));

namespace {

// Graph-building helpers that know the model's weights and sizes.
class Builder {
 public:
  Builder(const Model& model, Graph& g) : m_(model), c_(model.config()), g_(g), layout_(state_layout(c_)) {}

  int weight(const std::string& name, WeightUse use = WeightUse::dense) {
    int id = g_.find_weight(name, use);
    if (id >= 0) return id;
    const TensorRef& w = m_.weight(name, use);
    return g_.add_weight(name, w.dtype, w.shape, use);
  }
  int optional_weight(const std::string& name) { return m_.has_weight(name) ? weight(name) : -1; }

  // Norm(x) with the parameters under `prefix` (layernorm/batchnorm: weight, bias; scalenorm:
  // scalar in the weight slot; rmsnorm: weight; batchnorm: running stats).
  int norm(int x, const std::string& prefix, bool affine, const std::string& name, int64_t width) {
    OpParams p;
    p.norm = static_cast<NormKind>(c_.norm);  // same order: layernorm, scalenorm, rmsnorm, batchnorm
    p.affine = affine;
    p.eps = static_cast<float>(c_.norm_eps);
    int w = optional_weight(prefix + (c_.norm == ModelConfig::Norm::scalenorm ? "scalar" : "weight"));
    int b = optional_weight(prefix + "bias");
    int rm = optional_weight(prefix + "running_mean");
    int rv = optional_weight(prefix + "running_var");
    return g_.add(OpKind::norm, p, {x, w, b, rm, rv}, name, {kBatch, kSeq, width}, "Norm(x)  " + prefix);
  }

  // {x, W, b?}: W as the device prepared it for linear (its layout is the device's business).
  std::vector<int> linear_inputs(int x, const std::string& prefix, bool bias) {
    return {x, weight(prefix + "weight", WeightUse::linear), bias ? weight(prefix + "bias") : -1};
  }

  // A state tensor of state_layout.h ([R, ...]); -1 when the model's state has none (ring_keys
  // with quantized window keys) or the graph is stateless.
  int state(bool stateful, int layer, const char* leaf) {
    if (!stateful) return -1;
    const std::string name = state_tensor_name(layer, leaf);
    for (const StateTensor& t : layout_)
      if (t.name == name) {
        std::vector<int64_t> shape{kRows};
        shape.insert(shape.end(), t.row_shape.begin(), t.row_shape.end());
        return g_.add_tensor(name, t.dtype, std::move(shape), TensorRole::state);
      }
    return -1;
  }

  int linear(int x, const std::string& prefix, Activation act, const std::string& name, int64_t out,
             const std::string& ref, bool bias = true) {
    OpParams p;
    p.activation = act;
    return g_.add(OpKind::linear, p, linear_inputs(x, prefix, bias), name, {kBatch, kSeq, out}, ref);
  }

  const Model& m_;
  const ModelConfig& c_;
  Graph& g_;
  const std::vector<StateTensor> layout_;
};

}  // namespace

Graph build_graph(const Model& model, GraphKind kind, int64_t max_batch, int64_t max_seq,
                  const GraphOptions& options) {
  const ModelConfig& c = model.config();
  const bool stateful = kind != GraphKind::sequence;
  if (stateful && (c.bidirectional || c.task != ModelConfig::Task::lm))
    throw std::invalid_argument(std::string(graph_kind_name(kind)) + " needs a causal LM; this model is a " +
                                (c.task == ModelConfig::Task::lm ? "bidirectional LM" : "classifier"));
  if (kind == GraphKind::decode) max_seq = 1;
  Graph g(max_batch, max_seq);
  Builder b(model, g);
  const int64_t d = c.d_model, h = c.hidden_dim, e = c.z_dim, W = c.attention.window;

  // -- inputs ---------------------------------------------------------------------------------
  int x;
  if (c.embedding.kind == EmbeddingConfig::Kind::token) {
    int tokens = g.add_tensor("tokens", DType::i32, {kBatch, kSeq}, TensorRole::input);
    OpParams p;
    p.scale = static_cast<float>(c.embedding.scale);
    x = g.add(OpKind::embed_tokens, p, {tokens, b.weight("embed.weight")}, "embed", {kBatch, kSeq, d},
              "x = embedding.scale · E[token]");
  } else {
    int inputs = g.add_tensor("inputs", DType::f32, {kBatch, kSeq}, TensorRole::input);
    x = g.add(OpKind::embed_real, {}, {inputs, b.weight("embed.weight"), b.weight("embed.bias")}, "embed",
              {kBatch, kSeq, d}, "x = x·w + b");
  }
  int lengths = -1, rows = -1;
  if (!stateful) lengths = g.add_tensor("lengths", DType::i32, {kBatch}, TensorRole::input);
  if (stateful) rows = g.add_tensor("state_rows", DType::i32, {kBatch}, TensorRole::input);
  const int pos = b.state(stateful, -1, "pos");

  // -- layers ---------------------------------------------------------------------------------
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string L = "layers." + std::to_string(i) + ".";
    const std::string M = L + "mix.";
    auto state = [&](const char* leaf) { return b.state(stateful, i, leaf); };
    const int res = x;
    const int xn = c.prenorm ? b.norm(x, M + "norm.", true, L + "x_norm", d) : x;  // X~ = prenorm ? Norm(X) : X
    const int v = b.linear(xn, M + "v_proj.", Activation::silu, L + "v", h, "V = φ(v_proj(X~))");  // [B,n,h]
    OpParams ep;
    ep.bidirectional = c.bidirectional;
    ep.stateful = stateful;
    ep.has_lengths = lengths >= 0;
    const int xe = g.add(OpKind::ema, ep,
                         {xn, b.weight(M + "ema.q"), b.weight(M + "ema.pb"), b.weight(M + "ema.g"),
                          b.weight(M + "ema.omega"), lengths, state("ema"), rows},
                         L + "x_ema", {kBatch, kSeq, d}, "X' = φ(EMA(X~) + ω·X~)");  // [B,n,d]
    const int mx = b.linear(xe, M + "mx_proj.", Activation::none, L + "mx", c.mx_dim(), "B = mx_proj(X')");
    const auto gates = g.add_node(
        OpKind::mix_gates, {}, {mx, b.weight(M + "qk_scale"), b.weight(M + "qk_offset")},
        {{L + "u", {kBatch, kSeq, d}}, {L + "q", {kBatch, kSeq, e}}, {L + "k", {kBatch, kSeq, e}},
         {L + "r", {kBatch, kSeq, h}}, {L + "hx", {kBatch, kSeq, d}}},
        "u = σ(B[:, :d]); Z,R = split(φ(B[:, d:d+e+h])); HX = B[:, d+e+h:]; Q,K = Z ⊙ qk_scale + qk_offset");
    const int u = gates[0], q = gates[1], k = gates[2], r = gates[3], hx = gates[4];
    const int codes = g.add(OpKind::vq_codes, {}, {k, b.weight(M + "codebook")}, L + "codes", {kBatch, kSeq},
                            "c_j = argmin_s ||K_j − C_s||²", DType::i32);
    OpParams ap;
    ap.bidirectional = c.bidirectional;
    ap.stateful = stateful;
    ap.has_lengths = lengths >= 0;
    ap.window = static_cast<int>(W);
    ap.quantize_window_keys = c.attention.quantize_window_keys;
    const int o = g.add(OpKind::vq_attention, ap,
                        {q, k, v, codes, b.weight(M + "codebook"), b.weight(M + "rel_bias"), lengths,
                         state("ring_codes"), state("ring_values"), state("ring_keys"), state("cache_u"),
                         state("cache_n"), pos, rows},
                        L + "o", {kBatch, kSeq, h}, "O = VQAttention(Q, K, V)");  // [B,n,h]
    const int orr = g.add(OpKind::mul, {}, {o, r}, L + "o_r", {kBatch, kSeq, h}, "O ⊙ R");
    const int hp = b.linear(orr, M + "h_proj.", Activation::none, L + "h_proj", d, "h_proj(O ⊙ R)");
    int y = g.add(OpKind::gated_residual, {}, {res, u, hx, hp}, L + "mix_out", {kBatch, kSeq, d},
                  "Y = res + u ⊙ (φ(HX + h_proj(O ⊙ R)) − res)");
    if (!c.prenorm) y = b.norm(y, M + "norm.", true, L + "mix_norm", d);  // Y = Norm(Y)
    if (c.ffn_dim > 0) {
      const std::string F = L + "ffn.";
      const int in = c.prenorm ? b.norm(y, F + "norm.", true, L + "ffn_norm", d) : y;
      const int h1 = b.linear(in, F + "fc1.", Activation::silu, L + "ffn_hidden", c.ffn_dim, "φ(fc1(·))");
      const int h2 = b.linear(h1, F + "fc2.", Activation::none, L + "ffn_out", d, "fc2(·)");
      y = g.add(OpKind::add, {}, {y, h2}, L + "ffn_sum", {kBatch, kSeq, d}, "X + fc2(φ(fc1(·)))");
      if (!c.prenorm) y = b.norm(y, F + "norm.", true, L + "ffn_post_norm", d);  // Norm(X + fc2(φ(fc1(X))))
    }
    if (options.layer_outputs) {
      g.mark_output(y, L + "output");
      g.mark_output(codes, L + "codes");
    }
    x = y;
  }

  // -- head -----------------------------------------------------------------------------------
  if (c.prenorm) x = b.norm(x, "final_norm.", c.final_norm_affine, "final_norm", d);
  int logits;
  if (c.task == ModelConfig::Task::lm) {
    const std::string head = c.tie_embeddings ? "embed." : "lm_head.";
    logits = b.linear(x, head, Activation::none, "logits", c.vocab_size,
                      c.tie_embeddings ? "logits = x · Eᵀ" : "logits = lm_head(x)", /*bias=*/false);
  } else {
    const int rep = g.add(OpKind::mean_pool, {}, {x, lengths}, "rep", {kBatch, d}, "rep = mean over valid positions");
    OpParams gelu;
    gelu.activation = Activation::gelu;
    const int hid = g.add(OpKind::linear, gelu, b.linear_inputs(rep, "classifier.hidden.", true), "classifier_hidden",
                          {kBatch, c.classifier->hidden}, "hidden = gelu(classifier.hidden(rep))");
    logits = g.add(OpKind::linear, {}, b.linear_inputs(hid, "classifier.out.", false), "logits",
                   {kBatch, c.classifier->num_classes}, "logits = classifier.out(hidden)");
  }
  g.mark_output(logits);
  return g;
}

}  // namespace longvq

namespace longvq {

std::vector<DerivedWeight> derived_weights(const ModelConfig& c,
                                           const std::function<std::vector<float>(const std::string&)>& file_weight) {
  // The EMA coefficients (design page §2.2), in double then rounded once:
  //   p = σ(delta), q = 1 − σ(delta)·σ(alpha), pb = p·beta, g = gamma·sqrt(1/N)
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  const double scale = std::sqrt(1.0 / static_cast<double>(c.ema_ndim));
  const std::vector<int64_t> shape = {c.ema_channels(), c.ema_ndim};
  std::vector<DerivedWeight> out;
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string prefix = "layers." + std::to_string(i) + ".mix.ema.";
    const std::vector<float> delta = file_weight(prefix + "delta"), alpha = file_weight(prefix + "alpha"),
                             beta = file_weight(prefix + "beta"), gamma = file_weight(prefix + "gamma");
    const size_t count = gamma.size();
    DerivedWeight q{prefix + "q", shape, std::vector<float>(count)}, pb{prefix + "pb", shape, std::vector<float>(count)},
        g{prefix + "g", shape, std::vector<float>(count)};
    for (size_t j = 0; j < count; ++j) {
      const double p = sigmoid(delta[j]);
      q.values[j] = static_cast<float>(1.0 - p * sigmoid(alpha[j]));
      pb.values[j] = static_cast<float>(p * beta[j]);
      g.values[j] = static_cast<float>(gamma[j] * scale);
    }
    out.push_back(std::move(q));
    out.push_back(std::move(pb));
    out.push_back(std::move(g));
  }
  return out;
}

bool linear_weight(const ModelConfig& c, const std::string& name) {
  // The token table feeds embed_tokens, and is also the LM head only when tied.
  if (name == "embed.weight") return c.tie_embeddings && c.task == ModelConfig::Task::lm && c.embedding.kind ==
                                     EmbeddingConfig::Kind::token;
  // Every other 2-D "*.weight": the projections, fc1/fc2, lm_head, the classifier.
  static const char* const kLinear[] = {".v_proj.weight", ".mx_proj.weight", ".h_proj.weight", ".fc1.weight",
                                        ".fc2.weight", "lm_head.weight", "classifier.hidden.weight",
                                        "classifier.out.weight"};
  for (const char* suffix : kLinear)
    if (name.ends_with(suffix)) return true;
  return false;
}

}  // namespace longvq
