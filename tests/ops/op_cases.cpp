// Case generators of the op tests (op_cases.h): random cases over odd sizes and every parameter
// combination, per op.
#include "tests/ops/op_cases.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "engine/backends/backend_cpu.h"

namespace longvq::optest {
namespace {

// A decoding state as n steps would leave it at positions pos: the ring holds positions pos−W ..
// pos−1 that are ≥ 0 (slot = position mod W; empty slots carry code −1 and garbage values), the
// cache some per-code sums of older keys (empty while pos ≤ W).
void add_state(Rng& r, Case& c, int64_t B, int64_t W, int64_t S, int64_t e, int64_t h, bool qwk,
               const std::vector<int64_t>& pos) {
  Buffer rc(DType::i32, {B, W}), rv = f32(r, {B, W, h}), rk = f32(r, {B, W, e}, -2, 2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t slot = 0; slot < W; ++slot) {
      const int64_t p = pos[b], j = p - 1 - (((p - 1 - slot) % W) + W) % W;  // ring_positions
      rc.as<int32_t>()[b * W + slot] = j >= 0 ? static_cast<int32_t>(r.randint(0, S - 1)) : -1;
    }
  Buffer cu = f32_fill({B, S, h}, 0.0f);
  Buffer cn(DType::i32, {B, S});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const int32_t count = pos[b] > W ? static_cast<int32_t>(r.randint(0, 4)) : 0;
      cn.as<int32_t>()[b * S + s] = count;
      for (int64_t j = 0; j < h; ++j) cu.as<float>()[(b * S + s) * h + j] = count ? r.uni(-1, 1) * count : 0.0f;
    }
  c.in[7] = std::move(rc);
  c.in[8] = std::move(rv);
  c.in[9] = qwk ? Buffer() : std::move(rk);
  c.in[10] = std::move(cu);
  c.in[11] = std::move(cn);
  c.in[12] = i64({B}, pos);
}

}  // namespace

void ema_coefficients(Rng& r, int64_t Dp, int64_t N, Buffer& q, Buffer& pb, Buffer& g) {
  q = Buffer(DType::f32, {Dp, N});
  pb = Buffer(DType::f32, {Dp, N});
  g = Buffer(DType::f32, {Dp, N});
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  for (int64_t i = 0; i < Dp * N; ++i) {
    const double delta = r.uni(-3, 3), alpha = r.uni(-3, 3), beta = r.uni(-1, 1), gamma = r.uni(-1, 1);
    q.as<float>()[i] = static_cast<float>(1.0 - sig(delta) * sig(alpha));
    pb.as<float>()[i] = static_cast<float>(sig(delta) * beta);
    g.as<float>()[i] = static_cast<float>(gamma * std::sqrt(1.0 / static_cast<double>(N)));
  }
}

std::vector<int32_t> some_lengths(Rng& r, int64_t B, int64_t n) {
  std::vector<int32_t> len(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    len[b] = b == 0 ? static_cast<int32_t>(std::min<int64_t>(1, n))  // a length-1 row
             : b == 1 ? static_cast<int32_t>(n)                       // a full row
             : b == 2 ? 0                                             // an empty row
                      : static_cast<int32_t>(r.randint(0, n));
  return len;
}

Case make_ema(Rng& r, int64_t B, int64_t n, int64_t d, int64_t N, bool bidir, bool lengths, bool stateful) {
  Case c;
  c.op = OpKind::ema;
  c.params.bidirectional = bidir;
  c.params.has_lengths = lengths;
  c.params.stateful = stateful;
  c.name = "ema B=" + std::to_string(B) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
           " N=" + std::to_string(N) + (bidir ? " bidirectional" : " causal") + (lengths ? " lengths" : "") +
           (stateful ? " stateful" : "");
  Buffer q, pb, g;
  ema_coefficients(r, bidir ? 2 * d : d, N, q, pb, g);
  c.in.push_back(f32(r, {B, n, d}, -2, 2));
  c.in.push_back(std::move(q));
  c.in.push_back(std::move(pb));
  c.in.push_back(std::move(g));
  c.in.push_back(f32(r, {d}));
  c.in.push_back(lengths ? i32({B}, some_lengths(r, B, n)) : Buffer());
  c.in.push_back(stateful ? f32(r, {B, d, N}) : Buffer());
  c.in.push_back(Buffer());  // state_rows: row b of a B-row state
  c.out.push_back(out(DType::f32, {B, n, d}));
  return c;
}

std::vector<Case> ema_cases() {
  std::vector<Case> cs;
  Rng r(5);
  struct Size { int64_t B, n, d, N; };
  for (Size s : {Size{1, 1, 1, 1}, {2, 7, 3, 2}, {3, 33, 7, 16}, {1, 65, 33, 16}, {4, 5, 17, 3}, {2, 64, 48, 16}})
    for (bool bidir : {false, true})
      for (bool lengths : {false, true})
        for (bool stateful : {false, true}) {
          if (stateful && (bidir || lengths)) continue;
          cs.push_back(make_ema(r, s.B, s.n, s.d, s.N, bidir, lengths, stateful));
        }
  return cs;
}

std::vector<int64_t> seq_shape(int64_t T, int64_t cols, int variant) {
  if (variant % 3 == 1) return {1, T, cols};
  if (variant % 3 == 2) return {T, 1, cols};
  return {T, cols};
}

std::vector<Case> linear_cases() {
  std::vector<Case> cs;
  Rng r(4);
  int variant = 0;
  const char* acts[] = {"none", "silu", "gelu"};
  struct Size { int64_t T, K, N; };
  for (Size s : {Size{1, 1, 1}, {1, 7, 3}, {1, 65, 33}, {1, 300, 67}, {1, 1024, 17}, {2, 17, 9}, {3, 7, 5},
                 {7, 33, 65}, {33, 65, 7}, {65, 3, 33}, {70, 300, 130}, {5, 16, 8}, {9, 31, 100},
                 {1, 130, 300},   // a GEMV of 19 panels, groups of 8, 8 and 3
                 {4, 70, 300}, {6, 33, 150}, {8, 300, 130}})  // few rows (batched decode): whole groups and tails
    for (Activation act : {Activation::none, Activation::silu, Activation::gelu})
      for (bool bias : {true, false}) {
        Case c;
        c.op = OpKind::linear;
        c.params.activation = act;
        const auto shape = seq_shape(s.T, s.K, variant++);
        c.name = "linear x=" + shape_str(shape) + " N=" + std::to_string(s.N) + " act=" + acts[static_cast<int>(act)] +
                 (bias ? " bias" : " nobias");
        const float w = 2.0f / std::sqrt(static_cast<float>(s.K));
        c.in = {f32(r, shape, -1, 1), f32(r, {s.N, s.K}, -w, w), bias ? f32(r, {s.N}) : Buffer()};
        auto oshape = shape;
        oshape.back() = s.N;
        c.out.push_back(out(DType::f32, oshape));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> embed_cases() {
  std::vector<Case> cs;
  Rng r(1);
  int v = 0;
  for (auto [B, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 33}, {8, 200}})
    for (int64_t V : {1, 5, 65})
      for (int64_t d : {1, 7, 65}) {
        Case c;
        c.name = "embed_tokens B=" + std::to_string(B) + " n=" + std::to_string(n) + " V=" + std::to_string(V) +
                 " d=" + std::to_string(d);
        c.op = OpKind::embed_tokens;
        c.params.scale = (v++ % 2) ? 8.0f : 0.5f;
        c.in.push_back(i32_rand(r, {B, n}, 0, static_cast<int32_t>(V - 1)));
        c.in.push_back(v % 3 == 0 ? bf16(r, {V, d}) : f32(r, {V, d}));  // a tied bf16 table too
        c.name += c.in.back().dtype() == DType::bf16 ? " table=bf16" : "";
        c.out.push_back(out(DType::f32, {B, n, d}));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> embed_real_cases() {
  std::vector<Case> cs;
  Rng r(2);
  for (auto [B, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {2, 33}, {8, 200}})
    for (int64_t d : {1, 3, 65}) {
      Case c;
      c.name = "embed_real B=" + std::to_string(B) + " n=" + std::to_string(n) + " d=" + std::to_string(d);
      c.op = OpKind::embed_real;
      c.in = {f32(r, {B, n}, -2, 2), f32(r, {d}), f32(r, {d})};
      c.out.push_back(out(DType::f32, {B, n, d}));
      cs.push_back(std::move(c));
    }
  return cs;
}

std::vector<Case> norm_cases() {
  std::vector<Case> cs;
  Rng r(3);
  int variant = 0;
  const char* names[] = {"layernorm", "scalenorm", "rmsnorm", "batchnorm"};
  for (NormKind kind : {NormKind::layernorm, NormKind::scalenorm, NormKind::rmsnorm, NormKind::batchnorm})
    for (bool affine : {true, false})
      for (auto [T, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {7, 33}, {2, 65}, {65, 3}, {5, 130}, {300, 65}}) {
        Case c;
        c.op = OpKind::norm;
        c.params.norm = kind;
        c.params.affine = affine;
        c.params.eps = (variant % 2) ? 1e-3f : 1e-5f;
        const auto shape = seq_shape(T, d, variant++);
        c.name = std::string("norm ") + names[static_cast<int>(kind)] + (affine ? " affine" : " plain") +
                 " x=" + shape_str(shape);
        c.in.push_back(f32(r, shape, -3, 3));
        const bool two = kind == NormKind::layernorm || kind == NormKind::batchnorm;
        c.in.push_back(!affine ? Buffer() : kind == NormKind::scalenorm ? f32(r, {1}, 0.5f, 2.0f) : f32(r, {d}, 0.5f, 2.0f));
        c.in.push_back(affine && two ? f32(r, {d}) : Buffer());
        c.in.push_back(kind == NormKind::batchnorm ? f32(r, {d}) : Buffer());
        c.in.push_back(kind == NormKind::batchnorm ? f32(r, {d}, 0.25f, 2.0f) : Buffer());
        c.out.push_back(out(DType::f32, shape));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> linear_bf16_cases() {
  std::vector<Case> cs = linear_cases();
  Rng r(40);
  for (Case& c : cs) {
    const float w = 2.0f / std::sqrt(static_cast<float>(c.in[1].shape()[1]));
    c.in[1] = bf16(r, c.in[1].shape(), -w, w);
    c.name += " W=bf16";
  }
  return cs;
}

Buffer prepared_linear(const Buffer& W) {
  auto prep = cpu_device().prepare_weight(W.ref(), WeightUse::linear);
  REQUIRE(prep);
  Buffer p(W.dtype(), W.shape(), prep->buffer.bytes(), prep->ref.layout);
  std::memcpy(p.data(), prep->ref.data, prep->buffer.bytes());
  return p;
}

std::vector<Case> linear_prepared_cases() {
  std::vector<Case> cs = linear_cases();
  for (Case& c : linear_bf16_cases()) cs.push_back(std::move(c));
  for (Case& c : cs) {
    c.prepared[static_cast<size_t>(LinearIn::W)] = prepared_linear(c.in[static_cast<size_t>(LinearIn::W)]);
    c.name += " W prepared";
  }
  return cs;
}


std::vector<Case> mix_gates_cases() {
  std::vector<Case> cs;
  Rng r(6);
  int variant = 0;
  struct Size { int64_t T, d, e, h; };
  for (Size s : {Size{1, 1, 1, 1}, {7, 3, 5, 2}, {33, 16, 8, 24}, {3, 65, 7, 33}, {200, 16, 8, 24}}) {
    Case c;
    c.op = OpKind::mix_gates;
    const auto shape = seq_shape(s.T, 2 * s.d + s.e + s.h, variant++);
    c.name = "mix_gates mx=" + shape_str(shape) + " d=" + std::to_string(s.d) + " e=" + std::to_string(s.e) +
             " h=" + std::to_string(s.h);
    c.in = {f32(r, shape, -4, 4), f32(r, {2, s.e}), f32(r, {2, s.e})};
    for (int64_t cols : {s.d, s.e, s.e, s.h, s.d}) {
      auto o = shape;
      o.back() = cols;
      c.out.push_back(out(DType::f32, o));
    }
    cs.push_back(std::move(c));
  }
  return cs;
}

std::vector<Case> vq_codes_cases() {
  std::vector<Case> cs;
  Rng r(7);
  int variant = 0;
  struct Size { int64_t T, e, S; };
  for (Size s : {Size{1, 1, 1}, {7, 3, 5}, {33, 16, 33}, {65, 7, 256}, {3, 64, 65}, {40, 8, 3}}) {
    Case c;
    c.op = OpKind::vq_codes;
    const auto shape = seq_shape(s.T, s.e, variant++);
    c.name = "vq_codes k=" + shape_str(shape) + " S=" + std::to_string(s.S);
    c.in = {f32(r, shape, -2, 2), f32(r, {s.S, s.e})};
    auto o = shape;
    o.pop_back();
    c.out.push_back(out(DType::i32, o));
    cs.push_back(std::move(c));
  }
  // Ties: duplicated codewords, keys exactly on codewords, keys equidistant from two codewords.
  {
    Case c;
    c.op = OpKind::vq_codes;
    c.name = "vq_codes ties";
    Buffer C(DType::f32, {6, 2});
    const float cb[] = {1, 0, 0, 1, 1, 0, -1, 0, 0, -1, 0, 1};  // rows 0 = 2, 1 = 5
    std::copy(cb, cb + 12, C.as<float>());
    Buffer k(DType::f32, {6, 2});
    const float kk[] = {0.5f, 0.5f, 1, 0, 0, 1, -0.5f, -0.5f, 0, 0, 3, 0};
    std::copy(kk, kk + 12, k.as<float>());
    c.in = {std::move(k), std::move(C)};
    c.out.push_back(out(DType::i32, {6}));
    cs.push_back(std::move(c));
  }
  return cs;
}


Case make_attention(Rng& r, const AttnSpec& s) {
  Case c;
  c.op = OpKind::vq_attention;
  c.params.window = s.W;
  c.params.quantize_window_keys = s.qwk;
  c.params.bidirectional = s.bidir;
  c.params.has_lengths = s.lengths;
  c.params.stateful = s.stateful;
  std::ostringstream name;
  name << "vq_attention B=" << s.B << " n=" << s.n << " e=" << s.e << " h=" << s.h << " S=" << s.S << " W=" << s.W
       << (s.qwk ? " qwk" : " rawkeys") << (s.bidir ? " bidirectional" : " causal") << (s.lengths ? " lengths" : "")
       << (s.stateful ? " stateful pos=" + shape_str(s.pos) : "");
  c.name = name.str();
  c.in.resize(static_cast<size_t>(VqAttentionIn::count_));
  c.in[0] = f32(r, {s.B, s.n, s.e}, -2, 2);
  c.in[1] = f32(r, {s.B, s.n, s.e}, -2, 2);
  c.in[2] = f32(r, {s.B, s.n, s.h});
  c.in[3] = i32_rand(r, {s.B, s.n}, 0, static_cast<int32_t>(s.S - 1));
  c.in[4] = f32(r, {s.S, s.e});
  c.in[5] = f32(r, {s.bidir ? 2 * s.W + 1 : s.W + 1});
  if (s.lengths) c.in[6] = i32({s.B}, some_lengths(r, s.B, s.n));
  if (s.stateful) add_state(r, c, s.B, s.W, s.S, s.e, s.h, s.qwk, s.pos);
  c.out.push_back(out(DType::f32, {s.B, s.n, s.h}));
  return c;
}

std::vector<int64_t> mixed_positions(Rng& r, int64_t B, int64_t W) {
  const int64_t choices[] = {0, 1, std::max<int64_t>(W - 1, 0), W, W + 1, W + 7, 1000 + r.randint(0, 50)};
  std::vector<int64_t> pos(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) pos[b] = choices[(b + r.randint(0, 6)) % 7];
  if (B >= 2) {
    pos[0] = std::max<int64_t>(W - 1, 0) / 2;  // pos < W (or 0)
    pos[1] = W + 3;                            // pos ≥ W
  }
  return pos;
}

std::vector<Case> attention_cases() {
  std::vector<Case> cs;
  Rng r(8);
  struct Size { int64_t B, n, e, h, S; };
  for (Size z : {Size{1, 1, 1, 1, 1}, {2, 7, 3, 5, 1}, {3, 33, 8, 7, 5}, {2, 65, 7, 33, 33}, {4, 20, 16, 16, 200}})
    for (int W : {0, 1, 3, 8, 70})
      for (bool qwk : {true, false})
        for (int mode = 0; mode < 5; ++mode) {  // causal, causal+lengths, bidir, bidir+lengths, stateful
          AttnSpec s{z.B, z.n, z.e, z.h, z.S, W, qwk, mode == 2 || mode == 3, mode == 1 || mode == 3, mode == 4, {}};
          if (s.stateful) s.pos = mixed_positions(r, z.B, W);
          cs.push_back(make_attention(r, s));
        }
  // Decode: n = 1 with several rows at mixed positions (pos < W and pos ≥ W).
  for (int W : {0, 1, 4, 16})
    for (bool qwk : {true, false})
      for (int64_t S : {1, 9}) {
        AttnSpec s{6, 1, 5, 6, S, W, qwk, false, false, true, {}};
        s.pos = {0, 1, std::max(W - 1, 0), W, W + 1, 500};
        cs.push_back(make_attention(r, s));
      }
  return cs;
}

std::vector<Case> elementwise_cases() {
  std::vector<Case> cs;
  Rng r(9);
  int variant = 0;
  for (auto [T, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {33, 65}, {1000, 129}})
    for (OpKind op : {OpKind::mul, OpKind::add, OpKind::gated_residual})
      for (int alias : {-1, 0, 1}) {
        if (alias == 1 && op == OpKind::gated_residual) continue;
        Case c;
        c.op = op;
        c.alias = alias;
        const auto shape = seq_shape(T, d, variant++);
        c.name = std::string(op_name(op)) + " x=" + shape_str(shape) + (alias >= 0 ? " in place of input " + std::to_string(alias) : "");
        const int nin = op == OpKind::gated_residual ? 4 : 2;
        for (int i = 0; i < nin; ++i) c.in.push_back(f32(r, shape, -3, 3));
        c.out.push_back(out(DType::f32, shape));
        cs.push_back(std::move(c));
      }
  return cs;
}

std::vector<Case> mean_pool_cases() {
  std::vector<Case> cs;
  Rng r(10);
  for (auto [B, n, d] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 7, 5}, {4, 33, 65}, {2, 65, 3}, {4, 400, 65}})
    for (bool lengths : {true, false}) {
      Case c;
      c.op = OpKind::mean_pool;
      c.name = "mean_pool B=" + std::to_string(B) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
               (lengths ? " lengths" : "");
      c.in.push_back(f32(r, {B, n, d}, -3, 3));
      std::vector<int32_t> len(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) len[b] = b == 0 ? 1 : static_cast<int32_t>(r.randint(1, n));
      c.in.push_back(lengths ? i32({B}, len) : Buffer());
      c.out.push_back(out(DType::f32, {B, d}));
      cs.push_back(std::move(c));
    }
  return cs;
}

}  // namespace longvq::optest
