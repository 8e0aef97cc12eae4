#include "engine/ops/op_check.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace longvq {

bool tensor_present(const TensorRef& t) {
  return t.data != nullptr || (!t.shape.empty() && t.numel() == 0);
}

namespace {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Shape leading(const Shape& s) { return s.empty() ? s : Shape(s.begin(), s.end() - 1); }

const char* role(const OpCall& c, bool out, size_t i) {
  static const char* const embed_tokens_in[] = {"tokens", "table"};
  static const char* const embed_real_in[] = {"x", "weight", "bias"};
  static const char* const norm_in[] = {"x", "weight", "bias", "running_mean", "running_var"};
  static const char* const linear_in[] = {"x", "W", "b", "W_panels"};
  static const char* const ema_in[] = {"x", "q", "pb", "g", "omega", "lengths", "state"};
  static const char* const gates_in[] = {"mx", "qk_scale", "qk_offset"};
  static const char* const gates_out[] = {"u", "q", "k", "r", "hx"};
  static const char* const codes_in[] = {"k", "codebook"};
  static const char* const attn_in[] = {"q",         "k",          "v",         "codes",   "codebook",
                                        "rel_bias",  "lengths",    "ring_codes", "ring_values",
                                        "ring_keys", "cache_u",    "cache_n",   "pos"};
  static const char* const binary_in[] = {"a", "b"};
  static const char* const gated_in[] = {"res", "u", "hx", "hp"};
  static const char* const pool_in[] = {"x", "lengths"};
  auto pick = [i](const char* const* names, size_t n) { return i < n ? names[i] : "extra"; };
#define LONGVQ_PICK(a) pick(a, sizeof(a) / sizeof(a[0]))
  if (out) {
    if (c.op == OpKind::mix_gates) return LONGVQ_PICK(gates_out);
    if (i > 0) return "extra";
    switch (c.op) {
      case OpKind::vq_codes: return "codes";
      case OpKind::vq_attention: return "o";
      case OpKind::mean_pool: return "rep";
      case OpKind::embed_tokens:
      case OpKind::embed_real: return "out";
      default: return "y";
    }
  }
  switch (c.op) {
    case OpKind::embed_tokens: return LONGVQ_PICK(embed_tokens_in);
    case OpKind::embed_real: return LONGVQ_PICK(embed_real_in);
    case OpKind::norm:
      if (i == 1 && c.params.norm == NormKind::scalenorm) return "scalar";
      return LONGVQ_PICK(norm_in);
    case OpKind::linear: return LONGVQ_PICK(linear_in);
    case OpKind::ema: return LONGVQ_PICK(ema_in);
    case OpKind::mix_gates: return LONGVQ_PICK(gates_in);
    case OpKind::vq_codes: return LONGVQ_PICK(codes_in);
    case OpKind::vq_attention: return LONGVQ_PICK(attn_in);
    case OpKind::mul:
    case OpKind::add: return LONGVQ_PICK(binary_in);
    case OpKind::gated_residual: return LONGVQ_PICK(gated_in);
    case OpKind::mean_pool: return LONGVQ_PICK(pool_in);
    case OpKind::count_: break;
  }
#undef LONGVQ_PICK
  return "?";
}

class Checker {
 public:
  explicit Checker(const OpCall& c) : c_(c) {}

  [[noreturn]] void fail(const std::string& msg) const {
    throw std::invalid_argument(std::string(op_name(c_.op)) + ": " + msg);
  }
  std::string who(bool out, size_t i) const {
    return std::string(out ? "output " : "input ") + std::to_string(i) + " (" + role(c_, out, i) + ")";
  }
  const TensorRef& t(bool out, size_t i) const { return out ? c_.outputs[i] : c_.inputs[i]; }
  const TensorRef& in(size_t i) const { return c_.inputs[i]; }
  const TensorRef& out(size_t i) const { return c_.outputs[i]; }
  bool has(size_t i) const { return tensor_present(c_.inputs[i]); }

  void arity(size_t nin, size_t nout) const {
    if (c_.inputs.size() != nin)
      fail("expected " + std::to_string(nin) + " inputs (absent optional ones as null entries), found " +
           std::to_string(c_.inputs.size()));
    if (c_.outputs.size() != nout)
      fail("expected " + std::to_string(nout) + " outputs, found " + std::to_string(c_.outputs.size()));
    for (size_t i = 0; i < nin + nout; ++i) {
      const bool o = i >= nin;
      const TensorRef& x = t(o, o ? i - nin : i);
      for (int64_t dim : x.shape)
        if (dim < 0) fail(who(o, o ? i - nin : i) + ": negative dimension in shape " + shape_str(x.shape));
    }
    for (size_t i = 0; i < nout; ++i)
      if (!tensor_present(out(i))) fail(who(true, i) + ": missing (no data)");
  }

  void require(bool o, size_t i, const std::string& why) const {
    if (!tensor_present(t(o, i))) fail(who(o, i) + ": missing, but " + why);
  }
  void forbid(size_t i, const std::string& why) const {
    if (has(i)) fail(who(false, i) + ": must be absent (null) because " + why);
  }
  void dtype(bool o, size_t i, DType want) const {
    if (t(o, i).dtype != want)
      fail(who(o, i) + ": expected dtype " + dtype_name(want) + ", found " + dtype_name(t(o, i).dtype));
  }
  // A weight matrix: f32, or bf16 (the dtype the remaining checks then expect).
  DType matrix_dtype(size_t i) const {
    require(false, i, "it is required");
    const DType t = in(i).dtype;
    if (t != DType::f32 && t != DType::bf16)
      fail(who(false, i) + ": expected dtype f32 or bf16, found " + dtype_name(t));
    return t;
  }
  void min_rank(bool o, size_t i, size_t r, DType want) const {
    require(o, i, "it is required");
    dtype(o, i, want);
    if (t(o, i).shape.size() < r)
      fail(who(o, i) + ": expected rank >= " + std::to_string(r) + ", found shape " + shape_str(t(o, i).shape));
  }
  void rank(bool o, size_t i, size_t r, DType want, const char* symbols) const {
    require(o, i, "it is required");
    dtype(o, i, want);
    if (t(o, i).shape.size() != r)
      fail(who(o, i) + ": expected rank " + std::to_string(r) + " " + symbols + ", found shape " +
           shape_str(t(o, i).shape));
  }
  // Present, of dtype `want`, with exactly the shape `expect` (symbols names its dims).
  void tensor(bool o, size_t i, DType want, const Shape& expect, const std::string& symbols) const {
    require(o, i, "it is required");
    dtype(o, i, want);
    if (t(o, i).shape != expect)
      fail(who(o, i) + ": expected shape " + shape_str(expect) + (symbols.empty() ? "" : " = " + symbols) +
           ", found " + shape_str(t(o, i).shape));
  }
  // An optional input: present iff `wanted`; when present it must match.
  void optional(size_t i, bool wanted, const std::string& why_present, const std::string& why_absent,
                DType want, const Shape& expect, const std::string& symbols) const {
    if (wanted) {
      require(false, i, why_present);
      tensor(false, i, want, expect, symbols);
    } else {
      forbid(i, why_absent);
    }
  }

  // No output may overlap an input or another output, except an exact in-place alias that
  // op_allows_in_place permits.
  void overlaps() const {
    auto range = [](const TensorRef& x) {
      auto* p = static_cast<const unsigned char*>(x.data);
      return std::pair<const unsigned char*, const unsigned char*>(p, p + (p ? x.nbytes() : 0));
    };
    for (size_t o = 0; o < c_.outputs.size(); ++o) {
      auto [ob, oe] = range(out(o));
      if (ob == oe) continue;
      for (size_t i = 0; i < c_.inputs.size(); ++i) {
        auto [ib, ie] = range(in(i));
        if (ib == ie || ie <= ob || oe <= ib) continue;
        const bool alias_ok = o == 0 && op_allows_in_place(c_.op, static_cast<int>(i)) && ib == ob && ie == oe &&
                              in(i).dtype == out(o).dtype;
        if (!alias_ok)
          fail(who(true, o) + ": memory overlaps " + who(false, i) +
               (op_allows_in_place(c_.op, static_cast<int>(i)) ? " without being an exact in-place alias"
                                                               : ", which may not be computed in place"));
      }
      for (size_t p = 0; p < o; ++p) {
        auto [pb, pe] = range(out(p));
        if (pb != pe && !(pe <= ob || oe <= pb)) fail(who(true, o) + ": memory overlaps " + who(true, p));
      }
    }
  }

 private:
  const OpCall& c_;
};

constexpr bool IN = false;
constexpr bool OUT = true;
constexpr DType F32 = DType::f32;
constexpr DType I32 = DType::i32;
constexpr DType I64 = DType::i64;

void check_embed_tokens(const Checker& k) {
  k.arity(2, 1);
  k.min_rank(IN, 0, 1, I32);
  k.rank(IN, 1, 2, k.matrix_dtype(1), "[V, d]");
  const int64_t d = k.in(1).shape[1];
  k.tensor(OUT, 0, F32, concat(k.in(0).shape, {d}), "tokens.shape + [d]");
}

void check_embed_real(const Checker& k) {
  k.arity(3, 1);
  k.min_rank(IN, 0, 1, F32);
  k.rank(IN, 1, 1, F32, "[d]");
  const int64_t d = k.in(1).shape[0];
  k.tensor(IN, 2, F32, {d}, "[d]");
  k.tensor(OUT, 0, F32, concat(k.in(0).shape, {d}), "x.shape + [d]");
}

void check_norm(const OpCall& c, const Checker& k) {
  k.arity(5, 1);
  k.min_rank(IN, 0, 1, F32);
  const int64_t d = k.in(0).cols();
  const bool aff = c.params.affine;
  const std::string kind = c.params.norm == NormKind::layernorm   ? "layernorm"
                           : c.params.norm == NormKind::scalenorm ? "scalenorm"
                           : c.params.norm == NormKind::rmsnorm   ? "rmsnorm"
                                                                  : "batchnorm";
  const std::string yes = kind + " with affine=true needs it";
  const std::string no_affine = "affine is false";
  const std::string unused = kind + " has no such parameter";
  const std::string running = "only batchnorm has running statistics";
  switch (c.params.norm) {
    case NormKind::layernorm:
      k.optional(1, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(2, aff, yes, no_affine, F32, {d}, "[d]");
      k.forbid(3, running);
      k.forbid(4, running);
      break;
    case NormKind::scalenorm:
      k.optional(1, aff, yes, no_affine, F32, {1}, "[1] (the scalar)");
      k.forbid(2, unused);
      k.forbid(3, running);
      k.forbid(4, running);
      break;
    case NormKind::rmsnorm:
      k.optional(1, aff, yes, no_affine, F32, {d}, "[d]");
      k.forbid(2, unused);
      k.forbid(3, running);
      k.forbid(4, running);
      break;
    case NormKind::batchnorm:
      k.optional(1, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(2, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(3, true, "batchnorm always needs running_mean", "", F32, {d}, "[d]");
      k.optional(4, true, "batchnorm always needs running_var", "", F32, {d}, "[d]");
      break;
  }
  k.tensor(OUT, 0, F32, k.in(0).shape, "x.shape");
}

void check_linear(const Checker& k) {
  k.arity(4, 1);
  k.min_rank(IN, 0, 1, F32);
  const int64_t in = k.in(0).cols();
  const DType wt = k.matrix_dtype(1);
  k.rank(IN, 1, 2, wt, "[out, in]");
  const int64_t out = k.in(1).shape[0];
  k.tensor(IN, 1, wt, {out, in}, "[out, in] (in from x)");
  if (k.has(2)) k.tensor(IN, 2, F32, {out}, "[out]");
  if (k.has(3)) k.tensor(IN, 3, wt, linear_panels_shape(out, in), "[ceil(out/16), in, 16], W's dtype");
  k.tensor(OUT, 0, F32, concat(leading(k.in(0).shape), {out}), "x.shape[:-1] + [out]");
}

void check_ema(const OpCall& c, const Checker& k) {
  k.arity(7, 1);
  const OpParams& p = c.params;
  if (p.stateful && p.bidirectional) k.fail("stateful needs a causal EMA (bidirectional is set)");
  if (p.stateful && p.has_lengths)
    k.fail("stateful calls take no lengths (has_lengths is set); a state continues whole sequences");
  k.rank(IN, 0, 3, F32, "[B, n, d]");
  const int64_t B = k.in(0).shape[0], n = k.in(0).shape[1], d = k.in(0).shape[2];
  k.rank(IN, 1, 2, F32, "[D', N]");
  const int64_t dd = p.bidirectional ? 2 * d : d, N = k.in(1).shape[1];
  const std::string sym = p.bidirectional ? "[D' = 2d, N]" : "[D' = d, N]";
  for (size_t i = 1; i <= 3; ++i) k.tensor(IN, i, F32, {dd, N}, sym);
  k.tensor(IN, 4, F32, {d}, "[d]");
  k.optional(5, p.has_lengths, "has_lengths is true", "has_lengths is false", I32, {B}, "[B]");
  k.optional(6, p.stateful, "stateful is true", "stateful is false", F32, {B, d, N}, "[B, d, N]");
  k.tensor(OUT, 0, F32, {B, n, d}, "[B, n, d]");
}

void check_mix_gates(const Checker& k) {
  k.arity(3, 5);
  k.min_rank(IN, 0, 1, F32);
  const Shape lead = leading(k.in(0).shape);
  for (size_t o = 0; o < 5; ++o) k.min_rank(OUT, o, 1, F32);
  const int64_t d = k.out(0).cols(), e = k.out(1).cols(), h = k.out(3).cols();
  k.tensor(OUT, 0, F32, concat(lead, {d}), "mx.shape[:-1] + [d]");
  k.tensor(OUT, 1, F32, concat(lead, {e}), "mx.shape[:-1] + [e]");
  k.tensor(OUT, 2, F32, concat(lead, {e}), "mx.shape[:-1] + [e] (e from q)");
  k.tensor(OUT, 3, F32, concat(lead, {h}), "mx.shape[:-1] + [h]");
  k.tensor(OUT, 4, F32, concat(lead, {d}), "mx.shape[:-1] + [d] (d from u)");
  const Shape mx = concat(lead, {2 * d + e + h});
  k.tensor(IN, 0, F32, mx, "[..., 2d + e + h] (d, e, h from u, q, r)");
  k.tensor(IN, 1, F32, {2, e}, "[2, e]");
  k.tensor(IN, 2, F32, {2, e}, "[2, e]");
}

void check_vq_codes(const Checker& k) {
  k.arity(2, 1);
  k.min_rank(IN, 0, 1, F32);
  const int64_t e = k.in(0).cols();
  k.rank(IN, 1, 2, F32, "[S, e]");
  const int64_t S = k.in(1).shape[0];
  if (S < 1) k.fail(k.who(IN, 1) + ": the codebook needs at least one codeword, found shape [0, " +
                    std::to_string(k.in(1).shape[1]) + "]");
  k.tensor(IN, 1, F32, {S, e}, "[S, e] (e from k)");
  k.tensor(OUT, 0, I32, leading(k.in(0).shape), "k.shape[:-1]");
}

void check_vq_attention(const OpCall& c, const Checker& k) {
  k.arity(13, 1);
  const OpParams& p = c.params;
  const int64_t W = p.window;
  if (W < 0) k.fail("window must be >= 0, found " + std::to_string(W));
  if (p.stateful && p.bidirectional) k.fail("stateful needs causal attention (bidirectional is set)");
  if (p.stateful && p.has_lengths)
    k.fail("stateful calls take no lengths (has_lengths is set); a state continues whole sequences");
  k.rank(IN, 0, 3, F32, "[B, n, e]");
  const int64_t B = k.in(0).shape[0], n = k.in(0).shape[1], e = k.in(0).shape[2];
  if (e < 1) k.fail(k.who(IN, 0) + ": e must be >= 1, found shape " + shape_str(k.in(0).shape));
  k.tensor(IN, 1, F32, {B, n, e}, "[B, n, e]");
  k.rank(IN, 2, 3, F32, "[B, n, h]");
  const int64_t h = k.in(2).shape[2];
  k.tensor(IN, 2, F32, {B, n, h}, "[B, n, h]");
  k.tensor(IN, 3, I32, {B, n}, "[B, n]");
  k.rank(IN, 4, 2, F32, "[S, e]");
  const int64_t S = k.in(4).shape[0];
  if (S < 1) k.fail(k.who(IN, 4) + ": the codebook needs at least one codeword, found shape [0, " +
                    std::to_string(k.in(4).shape[1]) + "]");
  k.tensor(IN, 4, F32, {S, e}, "[S, e]");
  if (p.bidirectional)
    k.tensor(IN, 5, F32, {2 * W + 1}, "[2W + 1] (bidirectional, W = " + std::to_string(W) + ")");
  else
    k.tensor(IN, 5, F32, {W + 1}, "[W + 1] (causal, W = " + std::to_string(W) + ")");
  k.optional(6, p.has_lengths, "has_lengths is true", "has_lengths is false", I32, {B}, "[B]");
  const std::string st = "stateful is true", nst = "stateful is false";
  if (p.stateful) {
    // A W = 0 ring has no elements: accept it given with zero size or absent.
    if (W > 0 || k.has(7)) k.tensor(IN, 7, I32, {B, W}, "[B, W]");
    if (W > 0 || k.has(8)) k.tensor(IN, 8, F32, {B, W, h}, "[B, W, h]");
    if (p.quantize_window_keys)
      k.forbid(9, "quantize_window_keys is true (the ring keeps no raw keys)");
    else if (W > 0 || k.has(9))
      k.tensor(IN, 9, F32, {B, W, e}, "[B, W, e] (quantize_window_keys is false)");
    k.tensor(IN, 10, F32, {B, S, h}, "[B, S, h]");
    k.tensor(IN, 11, I32, {B, S}, "[B, S]");
    k.tensor(IN, 12, I64, {B}, "[B]");
  } else {
    for (size_t i = 7; i <= 12; ++i) k.forbid(i, nst);
  }
  k.tensor(OUT, 0, F32, {B, n, h}, "[B, n, h]");
}

void check_same(const Checker& k, size_t nin) {
  k.arity(nin, 1);
  k.min_rank(IN, 0, 1, F32);
  const Shape s = k.in(0).shape;
  for (size_t i = 1; i < nin; ++i) k.tensor(IN, i, F32, s, "the shape of input 0");
  k.tensor(OUT, 0, F32, s, "the shape of input 0");
}

void check_mean_pool(const Checker& k) {
  k.arity(2, 1);
  k.rank(IN, 0, 3, F32, "[B, n, d]");
  const int64_t B = k.in(0).shape[0], d = k.in(0).shape[2];
  if (k.has(1)) k.tensor(IN, 1, I32, {B}, "[B]");
  k.tensor(OUT, 0, F32, {B, d}, "[B, d]");
}

}  // namespace

void check_op_call(const OpCall& c) {
  if (static_cast<size_t>(c.op) >= static_cast<size_t>(OpKind::count_))
    throw std::invalid_argument("unknown op kind " + std::to_string(static_cast<int>(c.op)));
  Checker k(c);
  switch (c.op) {
    case OpKind::embed_tokens: check_embed_tokens(k); break;
    case OpKind::embed_real: check_embed_real(k); break;
    case OpKind::norm: check_norm(c, k); break;
    case OpKind::linear: check_linear(k); break;
    case OpKind::ema: check_ema(c, k); break;
    case OpKind::mix_gates: check_mix_gates(k); break;
    case OpKind::vq_codes: check_vq_codes(k); break;
    case OpKind::vq_attention: check_vq_attention(c, k); break;
    case OpKind::mul:
    case OpKind::add: check_same(k, 2); break;
    case OpKind::gated_residual: check_same(k, 4); break;
    case OpKind::mean_pool: check_mean_pool(k); break;
    case OpKind::count_: break;
  }
  k.overlaps();
}

}  // namespace longvq
