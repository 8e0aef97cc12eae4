#include "engine/ops/op_check.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace longvq {

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

// A slot of the call: an input or output, from its op's slot enum.
template <class S>
constexpr bool kIsOutput = std::is_same_v<S, OutY> || std::is_same_v<S, OutEmbed> || std::is_same_v<S, MixGatesOut> ||
                           std::is_same_v<S, VqCodesOut> || std::is_same_v<S, VqAttentionOut> ||
                           std::is_same_v<S, MeanPoolOut>;
struct Slot {
  bool out;
  size_t i;
  template <class S>
  constexpr Slot(S s) : out(kIsOutput<S>), i(static_cast<size_t>(s)) {}  // NOLINT: implicit by design
  constexpr Slot(bool o, size_t idx) : out(o), i(idx) {}
};

class Checker {
 public:
  explicit Checker(const OpCall& c) : c_(c), desc_(op_desc(c.op)) {}

  [[noreturn]] void fail(const std::string& msg) const { throw std::invalid_argument(std::string(desc_.name) + ": " + msg); }
  std::string who(Slot s) const {
    const auto& names = s.out ? desc_.outputs : desc_.inputs;
    std::string role = s.i < names.size() ? names[s.i] : "extra";
    if (c_.op == OpKind::norm && !s.out && s.i == static_cast<size_t>(NormIn::weight) &&
        c_.params.norm == NormKind::scalenorm)
      role = "scalar";
    return std::string(s.out ? "output " : "input ") + std::to_string(s.i) + " (" + role + ")";
  }
  const TensorRef& t(Slot s) const { return s.out ? c_.outputs[s.i] : c_.inputs[s.i]; }
  const Shape& shape(Slot s) const { return t(s).shape; }
  bool has(Slot s) const { return tensor_present(t(s)); }

  // The descriptor's slot counts; every shape non-negative; outputs present and dense; only the
  // slots the descriptor allows may hold a private layout.
  void arity() const {
    const size_t nin = desc_.inputs.size(), nout = desc_.outputs.size();
    if (c_.inputs.size() != nin)
      fail("expected " + std::to_string(nin) + " inputs (absent optional ones as null entries), found " +
           std::to_string(c_.inputs.size()));
    if (c_.outputs.size() != nout)
      fail("expected " + std::to_string(nout) + " outputs, found " + std::to_string(c_.outputs.size()));
    for (size_t i = 0; i < nin + nout; ++i) {
      const Slot s(i >= nin, i >= nin ? i - nin : i);
      for (int64_t dim : shape(s))
        if (dim < 0) fail(who(s) + ": negative dimension in shape " + shape_str(shape(s)));
      if (t(s).layout != 0 && (s.out || !((desc_.private_layout >> s.i) & 1u)))
        fail(who(s) + ": must be dense row-major (layout 0), found a backend's private layout " +
             std::to_string(t(s).layout));
    }
    for (size_t i = 0; i < nout; ++i)
      if (!tensor_present(c_.outputs[i])) fail(who(Slot(true, i)) + ": missing (no data)");
  }

  void require(Slot s, const std::string& why) const {
    if (!has(s)) fail(who(s) + ": missing, but " + why);
  }
  void forbid(Slot s, const std::string& why) const {
    if (has(s)) fail(who(s) + ": must be absent (null) because " + why);
  }
  void dtype(Slot s, DType want) const {
    if (t(s).dtype != want) fail(who(s) + ": expected dtype " + dtype_name(want) + ", found " + dtype_name(t(s).dtype));
  }
  // A weight matrix: f32, bf16 or q8_0 (the dtype the remaining checks then expect).
  DType matrix_dtype(Slot s) const {
    require(s, "it is required");
    const DType d = t(s).dtype;
    if (d != DType::f32 && d != DType::bf16 && d != DType::q8)
      fail(who(s) + ": expected dtype f32, bf16 or q8_0, found " + dtype_name(d));
    return d;
  }
  void min_rank(Slot s, size_t r, DType want) const {
    require(s, "it is required");
    dtype(s, want);
    if (shape(s).size() < r)
      fail(who(s) + ": expected rank >= " + std::to_string(r) + ", found shape " + shape_str(shape(s)));
  }
  void rank(Slot s, size_t r, DType want, const char* symbols) const {
    require(s, "it is required");
    dtype(s, want);
    if (shape(s).size() != r)
      fail(who(s) + ": expected rank " + std::to_string(r) + " " + symbols + ", found shape " + shape_str(shape(s)));
  }
  // Present, of dtype `want`, with exactly the shape `expect` (symbols names its dims).
  void tensor(Slot s, DType want, const Shape& expect, const std::string& symbols) const {
    require(s, "it is required");
    dtype(s, want);
    if (shape(s) != expect)
      fail(who(s) + ": expected shape " + shape_str(expect) + (symbols.empty() ? "" : " = " + symbols) + ", found " +
           shape_str(shape(s)));
  }
  // An optional input: present iff `wanted`; when present it must match.
  void optional(Slot s, bool wanted, const std::string& why_present, const std::string& why_absent, DType want,
                const Shape& expect, const std::string& symbols) const {
    if (wanted) {
      require(s, why_present);
      tensor(s, want, expect, symbols);
    } else {
      forbid(s, why_absent);
    }
  }

  // The rows R of a stateful call's state, from `first` (a state tensor [R, ...]); with
  // `state_rows` absent R must be the batch B, with it present it is [B] i32 (the kernels trust
  // its values: the runtime checks them in [0, R) and distinct before a run).
  int64_t state_rows(Slot first, Slot rows, int64_t B) const {
    require(first, "stateful is true");
    if (shape(first).empty()) fail(who(first) + ": expected a state tensor [R, ...], found a scalar");
    const int64_t R = shape(first)[0];
    if (has(rows))
      tensor(rows, DType::i32, {B}, "[B] (the state row of each batch row)");
    else if (R != B)
      fail(who(first) + ": the state has " + std::to_string(R) + " rows but the call " + std::to_string(B) +
           "; pass state_rows to pick the rows that step");
    return R;
  }

  // No output may overlap an input or another output, except an exact in-place alias that the
  // descriptor permits.
  void overlaps() const {
    auto range = [](const TensorRef& x) {
      auto* p = static_cast<const unsigned char*>(x.data);
      return std::pair<const unsigned char*, const unsigned char*>(p, p + (p ? x.nbytes() : 0));
    };
    for (size_t o = 0; o < c_.outputs.size(); ++o) {
      auto [ob, oe] = range(c_.outputs[o]);
      if (ob == oe) continue;
      for (size_t i = 0; i < c_.inputs.size(); ++i) {
        auto [ib, ie] = range(c_.inputs[i]);
        if (ib == ie || ie <= ob || oe <= ib) continue;
        const bool may = op_allows_in_place(c_.op, static_cast<int>(i));
        const bool alias_ok = o == 0 && may && ib == ob && ie == oe && c_.inputs[i].dtype == c_.outputs[o].dtype;
        if (!alias_ok)
          fail(who(Slot(true, o)) + ": memory overlaps " + who(Slot(false, i)) +
               (may ? " without being an exact in-place alias" : ", which may not be computed in place"));
      }
      for (size_t p = 0; p < o; ++p) {
        auto [pb, pe] = range(c_.outputs[p]);
        if (pb != pe && !(pe <= ob || oe <= pb)) fail(who(Slot(true, o)) + ": memory overlaps " + who(Slot(true, p)));
      }
    }
  }

  const OpCall& call() const { return c_; }
  const OpParams& params() const { return c_.params; }

 private:
  const OpCall& c_;
  const OpDesc& desc_;
};

constexpr DType F32 = DType::f32;
constexpr DType I32 = DType::i32;
constexpr DType I64 = DType::i64;

void check_embed_tokens(const Checker& k) {
  using I = EmbedTokensIn;
  k.min_rank(I::tokens, 1, I32);
  k.rank(I::table, 2, k.matrix_dtype(I::table), "[V, d]");
  const int64_t d = k.shape(I::table)[1];
  k.tensor(OutEmbed::out, F32, concat(k.shape(I::tokens), {d}), "tokens.shape + [d]");
}

void check_embed_real(const Checker& k) {
  using I = EmbedRealIn;
  k.min_rank(I::x, 1, F32);
  k.rank(I::weight, 1, F32, "[d]");
  const int64_t d = k.shape(I::weight)[0];
  k.tensor(I::bias, F32, {d}, "[d]");
  k.tensor(OutEmbed::out, F32, concat(k.shape(I::x), {d}), "x.shape + [d]");
}

void check_norm(const Checker& k) {
  using I = NormIn;
  const OpParams& p = k.params();
  k.min_rank(I::x, 1, F32);
  const int64_t d = k.t(I::x).cols();
  const bool aff = p.affine;
  const std::string kind = p.norm == NormKind::layernorm   ? "layernorm"
                           : p.norm == NormKind::scalenorm ? "scalenorm"
                           : p.norm == NormKind::rmsnorm   ? "rmsnorm"
                                                           : "batchnorm";
  const std::string yes = kind + " with affine=true needs it";
  const std::string no_affine = "affine is false";
  const std::string unused = kind + " has no such parameter";
  const std::string running = "only batchnorm has running statistics";
  switch (p.norm) {
    case NormKind::layernorm:
      k.optional(I::weight, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(I::bias, aff, yes, no_affine, F32, {d}, "[d]");
      k.forbid(I::running_mean, running);
      k.forbid(I::running_var, running);
      break;
    case NormKind::scalenorm:
      k.optional(I::weight, aff, yes, no_affine, F32, {1}, "[1] (the scalar)");
      k.forbid(I::bias, unused);
      k.forbid(I::running_mean, running);
      k.forbid(I::running_var, running);
      break;
    case NormKind::rmsnorm:
      k.optional(I::weight, aff, yes, no_affine, F32, {d}, "[d]");
      k.forbid(I::bias, unused);
      k.forbid(I::running_mean, running);
      k.forbid(I::running_var, running);
      break;
    case NormKind::batchnorm:
      k.optional(I::weight, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(I::bias, aff, yes, no_affine, F32, {d}, "[d]");
      k.optional(I::running_mean, true, "batchnorm always needs running_mean", "", F32, {d}, "[d]");
      k.optional(I::running_var, true, "batchnorm always needs running_var", "", F32, {d}, "[d]");
      break;
  }
  k.tensor(OutY::y, F32, k.shape(I::x), "x.shape");
}

void check_linear(const Checker& k) {
  using I = LinearIn;
  k.min_rank(I::x, 1, F32);
  const int64_t in = k.t(I::x).cols();
  const DType wt = k.matrix_dtype(I::W);
  k.rank(I::W, 2, wt, "[out, in]");
  const int64_t out = k.shape(I::W)[0];
  k.tensor(I::W, wt, {out, in}, "[out, in] (in from x)");
  if (k.has(I::b)) k.tensor(I::b, F32, {out}, "[out]");
  k.tensor(OutY::y, F32, concat(leading(k.shape(I::x)), {out}), "x.shape[:-1] + [out]");
}

void check_ema(const Checker& k) {
  using I = EmaIn;
  const OpParams& p = k.params();
  if (p.stateful && p.bidirectional) k.fail("stateful needs a causal EMA (bidirectional is set)");
  if (p.stateful && p.has_lengths)
    k.fail("stateful calls take no lengths (has_lengths is set); a state continues whole sequences");
  k.rank(I::x, 3, F32, "[B, n, d]");
  const int64_t B = k.shape(I::x)[0], n = k.shape(I::x)[1], d = k.shape(I::x)[2];
  k.rank(I::q, 2, F32, "[D', N]");
  const int64_t dd = p.bidirectional ? 2 * d : d, N = k.shape(I::q)[1];
  const std::string sym = p.bidirectional ? "[D' = 2d, N]" : "[D' = d, N]";
  for (I i : {I::q, I::pb, I::g}) k.tensor(i, F32, {dd, N}, sym);
  k.tensor(I::omega, F32, {d}, "[d]");
  k.optional(I::lengths, p.has_lengths, "has_lengths is true", "has_lengths is false", I32, {B}, "[B]");
  if (p.stateful) {
    const int64_t R = k.state_rows(I::state, I::state_rows, B);
    k.tensor(I::state, F32, {R, d, N}, "[R, d, N]");
  } else {
    k.forbid(I::state, "stateful is false");
    k.forbid(I::state_rows, "stateful is false");
  }
  k.tensor(OutY::y, F32, {B, n, d}, "[B, n, d]");
}

void check_mix_gates(const Checker& k) {
  using I = MixGatesIn;
  using O = MixGatesOut;
  k.min_rank(I::mx, 1, F32);
  const Shape lead = leading(k.shape(I::mx));
  for (O o : {O::u, O::q, O::k, O::r, O::hx}) k.min_rank(o, 1, F32);
  const int64_t d = k.t(O::u).cols(), e = k.t(O::q).cols(), h = k.t(O::r).cols();
  k.tensor(O::u, F32, concat(lead, {d}), "mx.shape[:-1] + [d]");
  k.tensor(O::q, F32, concat(lead, {e}), "mx.shape[:-1] + [e]");
  k.tensor(O::k, F32, concat(lead, {e}), "mx.shape[:-1] + [e] (e from q)");
  k.tensor(O::r, F32, concat(lead, {h}), "mx.shape[:-1] + [h]");
  k.tensor(O::hx, F32, concat(lead, {d}), "mx.shape[:-1] + [d] (d from u)");
  k.tensor(I::mx, F32, concat(lead, {2 * d + e + h}), "[..., 2d + e + h] (d, e, h from u, q, r)");
  k.tensor(I::qk_scale, F32, {2, e}, "[2, e]");
  k.tensor(I::qk_offset, F32, {2, e}, "[2, e]");
}

// A codebook [S, e] with S >= 1.
int64_t check_codebook(const Checker& k, Slot cb, int64_t e) {
  k.rank(cb, 2, F32, "[S, e]");
  const int64_t S = k.shape(cb)[0];
  if (S < 1)
    k.fail(k.who(cb) + ": the codebook needs at least one codeword, found shape [0, " + std::to_string(k.shape(cb)[1]) + "]");
  k.tensor(cb, F32, {S, e}, "[S, e] (e from k)");
  return S;
}

void check_vq_codes(const Checker& k) {
  using I = VqCodesIn;
  k.min_rank(I::k, 1, F32);
  check_codebook(k, I::codebook, k.t(I::k).cols());
  k.tensor(VqCodesOut::codes, I32, leading(k.shape(I::k)), "k.shape[:-1]");
}

void check_vq_attention(const Checker& k) {
  using I = VqAttentionIn;
  const OpParams& p = k.params();
  const int64_t W = p.window;
  if (W < 0) k.fail("window must be >= 0, found " + std::to_string(W));
  if (p.stateful && p.bidirectional) k.fail("stateful needs causal attention (bidirectional is set)");
  if (p.stateful && p.has_lengths)
    k.fail("stateful calls take no lengths (has_lengths is set); a state continues whole sequences");
  k.rank(I::q, 3, F32, "[B, n, e]");
  const int64_t B = k.shape(I::q)[0], n = k.shape(I::q)[1], e = k.shape(I::q)[2];
  if (e < 1) k.fail(k.who(I::q) + ": e must be >= 1, found shape " + shape_str(k.shape(I::q)));
  k.tensor(I::k, F32, {B, n, e}, "[B, n, e]");
  k.rank(I::v, 3, F32, "[B, n, h]");
  const int64_t h = k.shape(I::v)[2];
  k.tensor(I::v, F32, {B, n, h}, "[B, n, h]");
  k.tensor(I::codes, I32, {B, n}, "[B, n]");
  const int64_t S = check_codebook(k, I::codebook, e);
  if (p.bidirectional)
    k.tensor(I::rel_bias, F32, {2 * W + 1}, "[2W + 1] (bidirectional, W = " + std::to_string(W) + ")");
  else
    k.tensor(I::rel_bias, F32, {W + 1}, "[W + 1] (causal, W = " + std::to_string(W) + ")");
  k.optional(I::lengths, p.has_lengths, "has_lengths is true", "has_lengths is false", I32, {B}, "[B]");
  if (p.stateful) {
    const int64_t R = k.state_rows(I::pos, I::state_rows, B);
    k.tensor(I::pos, I64, {R}, "[R]");
    // A W = 0 ring has no elements: accept it given with zero size or absent.
    if (W > 0 || k.has(I::ring_codes)) k.tensor(I::ring_codes, I32, {R, W}, "[R, W]");
    if (W > 0 || k.has(I::ring_values)) k.tensor(I::ring_values, F32, {R, W, h}, "[R, W, h]");
    if (p.quantize_window_keys)
      k.forbid(I::ring_keys, "quantize_window_keys is true (the ring keeps no raw keys)");
    else if (W > 0 || k.has(I::ring_keys))
      k.tensor(I::ring_keys, F32, {R, W, e}, "[R, W, e] (quantize_window_keys is false)");
    k.tensor(I::cache_u, F32, {R, S, h}, "[R, S, h]");
    k.tensor(I::cache_n, I32, {R, S}, "[R, S]");
  } else {
    for (I i : {I::ring_codes, I::ring_values, I::ring_keys, I::cache_u, I::cache_n, I::pos, I::state_rows})
      k.forbid(i, "stateful is false");
  }
  k.tensor(VqAttentionOut::o, F32, {B, n, h}, "[B, n, h]");
}

// Elementwise ops: every input and the output of the shape of input 0.
void check_same(const Checker& k) {
  const size_t nin = k.call().inputs.size();
  const Slot first(false, 0);
  k.min_rank(first, 1, F32);
  const Shape s = k.shape(first);
  for (size_t i = 1; i < nin; ++i) k.tensor(Slot(false, i), F32, s, "the shape of input 0");
  k.tensor(OutY::y, F32, s, "the shape of input 0");
}

void check_mean_pool(const Checker& k) {
  using I = MeanPoolIn;
  k.rank(I::x, 3, F32, "[B, n, d]");
  const int64_t B = k.shape(I::x)[0], d = k.shape(I::x)[2];
  if (k.has(I::lengths)) k.tensor(I::lengths, I32, {B}, "[B]");
  k.tensor(MeanPoolOut::rep, F32, {B, d}, "[B, d]");
}

}  // namespace

void check_op_call(const OpCall& c) {
  if (static_cast<size_t>(c.op) >= static_cast<size_t>(OpKind::count_))
    throw std::invalid_argument("unknown op kind " + std::to_string(static_cast<int>(c.op)));
  Checker k(c);
  k.arity();
  switch (c.op) {
    case OpKind::embed_tokens: check_embed_tokens(k); break;
    case OpKind::embed_real: check_embed_real(k); break;
    case OpKind::norm: check_norm(k); break;
    case OpKind::linear: check_linear(k); break;
    case OpKind::ema: check_ema(k); break;
    case OpKind::mix_gates: check_mix_gates(k); break;
    case OpKind::vq_codes: check_vq_codes(k); break;
    case OpKind::vq_attention: check_vq_attention(k); break;
    case OpKind::mul:
    case OpKind::add:
    case OpKind::gated_residual: check_same(k); break;
    case OpKind::mean_pool: check_mean_pool(k); break;
    case OpKind::count_: break;
  }
  k.overlaps();
}

}  // namespace longvq
