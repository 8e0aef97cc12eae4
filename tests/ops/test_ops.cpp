// The op harness, in the manner of ggml's test-backend-ops: for every op, random cases over odd
// sizes and every parameter combination run the reference kernel (kernels/ref) and the backend
// under test (--backend cpu: every instruction set this machine has, 1 and 2 threads;
// --backend cuda: the CUDA kernels, through device copies of every tensor) on identical inputs, then
//  * compare: max |cpu − ref| ≤ tol · max(1, max |ref|) per op (codes and other ints exact),
//  * every tensor sits between guard bytes that must stay untouched, outputs start as NaN and
//    must end finite, read-only inputs must be unchanged,
//  * 1 thread and 2 threads (cpu), or two runs (cuda), must agree bit for bit.
// Plus the stateful invariants (split chunk == whole == single steps; from an empty state ==
// stateless causal) and check_op_call's refusals. Filter one op with its tag: test_ops "[ema]".
// Hidden benchmarks: test_ops "[.perf]".
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/backend_cpu.h"
#include "engine/runtime/model.h"
#include "engine/ops/op.h"
#include "engine/ops/op_check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/ref/ref_ops.h"
#include "tests/backend_under_test.h"

using namespace longvq;

namespace {

// ---------------------------------------------------------------------------------------------
// Tensors with guard bytes
// ---------------------------------------------------------------------------------------------
constexpr size_t kGuardBytes = 64;
constexpr unsigned char kGuardByte = 0xA5;

class Buffer {
 public:
  Buffer() = default;  // an absent optional input
  Buffer(DType t, std::vector<int64_t> shape) : dtype_(t), shape_(std::move(shape)), present_(true) {
    bytes_ = static_cast<size_t>(numel()) * dtype_size(dtype_);
    words_.assign((2 * kGuardBytes + bytes() + 7) / 8, 0);
    std::memset(raw(), kGuardByte, 2 * kGuardBytes + bytes());
  }
  // A weight in a backend's private layout: `bytes` of data for the logical `shape`.
  Buffer(DType t, std::vector<int64_t> shape, size_t bytes, uint8_t layout) : Buffer(t, {static_cast<int64_t>(bytes)}) {
    shape_ = std::move(shape);
    layout_ = layout;
  }
  bool present() const { return present_; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  size_t bytes() const { return bytes_; }
  void* data() const { return raw() + kGuardBytes; }
  template <class T>
  T* as() const { return static_cast<T*>(data()); }
  TensorRef ref() const { return present_ ? TensorRef{data(), dtype_, shape_, layout_} : TensorRef{}; }
  bool guards_intact() const {
    const unsigned char* p = raw();
    for (size_t i = 0; i < kGuardBytes; ++i)
      if (p[i] != kGuardByte || p[kGuardBytes + bytes() + i] != kGuardByte) return false;
    return true;
  }
  bool same_bytes(const Buffer& o) const { return bytes() == o.bytes() && !std::memcmp(data(), o.data(), bytes()); }

 private:
  unsigned char* raw() const { return reinterpret_cast<unsigned char*>(words_.data()); }
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  size_t bytes_ = 0;
  uint8_t layout_ = 0;
  bool present_ = false;
  mutable std::vector<uint64_t> words_;
};

struct Rng {
  std::mt19937 g;
  explicit Rng(uint32_t seed) : g(seed) {}
  float uni(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g); }
  int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); }  // inclusive
};

Buffer f32(Rng& r, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f) {
  Buffer b(DType::f32, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<float>()[i] = r.uni(lo, hi);
  return b;
}
// A bf16 weight matrix (random f32 values rounded to nearest even), and its exact f32 widening.
Buffer bf16(Rng& r, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f) {
  Buffer b(DType::bf16, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<uint16_t>()[i] = f32_to_bf16(r.uni(lo, hi));
  return b;
}
Buffer widened(const Buffer& b16) {
  Buffer b(DType::f32, b16.shape());
  for (int64_t i = 0; i < b.numel(); ++i) b.as<float>()[i] = bf16_to_f32(b16.as<uint16_t>()[i]);
  return b;
}
Buffer f32_fill(std::vector<int64_t> shape, float v) {
  Buffer b(DType::f32, std::move(shape));
  std::fill(b.as<float>(), b.as<float>() + b.numel(), v);
  return b;
}
Buffer i32(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  Buffer b(DType::i32, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<int32_t>()[i] = values.at(static_cast<size_t>(i));
  return b;
}
Buffer i32_rand(Rng& r, std::vector<int64_t> shape, int32_t lo, int32_t hi) {
  Buffer b(DType::i32, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<int32_t>()[i] = static_cast<int32_t>(r.randint(lo, hi));
  return b;
}
Buffer i64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  Buffer b(DType::i64, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<int64_t>()[i] = values.at(static_cast<size_t>(i));
  return b;
}
// An output: poisoned with NaN (f32) or 0x7f7f7f7f (ints), so an unwritten element shows.
Buffer out(DType t, std::vector<int64_t> shape) {
  Buffer b(t, std::move(shape));
  if (t == DType::f32)
    std::fill(b.as<float>(), b.as<float>() + b.numel(), std::numeric_limits<float>::quiet_NaN());
  else
    std::memset(b.data(), 0x7f, b.bytes());
  return b;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ',';
    r += std::to_string(s[i]);
  }
  return r + "]";
}

// ---------------------------------------------------------------------------------------------
// Cases and the comparison harness
// ---------------------------------------------------------------------------------------------
struct Case {
  std::string name;
  OpKind op = OpKind::add;
  OpParams params;
  std::vector<Buffer> in, out;
  int alias = -1;  // output 0 is computed in place in input `alias`
  // Inputs the backend under test gets in its device's prepared layout instead (the reference
  // always reads the dense `in`).
  std::map<size_t, Buffer> prepared;

  OpCall call(bool use_prepared = false) const {
    OpCall c{op, params, {}, {}};
    for (size_t i = 0; i < in.size(); ++i)
      c.inputs.push_back(use_prepared && prepared.count(i) ? prepared.at(i).ref() : in[i].ref());
    for (const Buffer& b : out) c.outputs.push_back(b.ref());
    if (alias >= 0) c.outputs[0].data = c.inputs[static_cast<size_t>(alias)].data;
    return c;
  }
};

using Kernel = std::function<void(const OpCall&)>;
const Kernel kRef = [](const OpCall& c) { ref_run(c); };
Kernel cpu_kernel(int threads) {
  return [threads](const OpCall& c) { cpu_run(c, CpuContext{threads}); };
}

// Runs a host call on a backend with its own memory (CUDA): every present tensor is copied to
// backend memory between guard bytes, the op runs, then every tensor is copied back and its
// guards checked, so the harness's checks (guards, read-only inputs, states) apply unchanged.
// An output aliasing an input (in place) shares that input's copy.
Kernel device_kernel(Backend& be) {
  return [&be](const OpCall& host) {
    struct Copy {
      void* host;
      size_t bytes;
      BackendBuffer buffer;
    };
    std::vector<Copy> copies;
    std::vector<std::pair<void*, void*>> device_of;  // host pointer → device pointer
    auto mirror = [&](TensorRef& t) {
      if (!tensor_present(t)) return;
      for (const auto& [h, d] : device_of)
        if (h == t.data) {
          t.data = d;
          return;
        }
      const size_t bytes = t.nbytes();
      Copy c{t.data, bytes, BackendBuffer(be, bytes + 2 * kGuardBytes)};
      std::vector<unsigned char> staging(bytes + 2 * kGuardBytes, kGuardByte);
      if (bytes) std::memcpy(staging.data() + kGuardBytes, t.data, bytes);
      be.upload(c.buffer.data(), staging.data(), staging.size());
      void* dev = static_cast<char*>(c.buffer.data()) + kGuardBytes;
      device_of.emplace_back(t.data, dev);
      t.data = dev;
      copies.push_back(std::move(c));
    };
    OpCall dev = host;
    for (TensorRef& t : dev.inputs) mirror(t);
    for (TensorRef& t : dev.outputs) mirror(t);
    be.run(dev);
    be.synchronize();
    for (Copy& c : copies) {
      std::vector<unsigned char> staging(c.bytes + 2 * kGuardBytes);
      be.download(staging.data(), c.buffer.data(), staging.size());
      for (size_t i = 0; i < kGuardBytes; ++i)
        if (staging[i] != kGuardByte || staging[kGuardBytes + c.bytes + i] != kGuardByte)
          throw std::runtime_error("device guard bytes around a tensor were overwritten");
      if (c.bytes) std::memcpy(c.host, staging.data() + kGuardBytes, c.bytes);
    }
  };
}

bool testing_cuda() { return test::backend_under_test() == BackendKind::cuda; }

Backend& cuda_backend() {
  static std::unique_ptr<Backend> be = device(BackendKind::cuda).make_backend(0);
  return *be;
}

// The kernel of the backend under test (cpu: 2 threads), and its name in messages.
Kernel under_test() { return testing_cuda() ? device_kernel(cuda_backend()) : cpu_kernel(2); }
std::string under_test_name() { return testing_cuda() ? "cuda" : "cpu(2)"; }

// Inputs a kernel updates in place (states).
bool is_state_input(OpKind op, size_t i) {
  using A = VqAttentionIn;
  if (op == OpKind::ema) return i == static_cast<size_t>(EmaIn::state);
  if (op == OpKind::vq_attention) return i >= static_cast<size_t>(A::ring_codes) && i <= static_cast<size_t>(A::cache_n);
  return false;
}

// What a run produced: outputs (or the aliased input) and updated states, by name.
std::vector<std::pair<std::string, const Buffer*>> results(const Case& c) {
  std::vector<std::pair<std::string, const Buffer*>> r;
  for (size_t i = 0; i < c.out.size(); ++i)
    r.emplace_back("output " + std::to_string(i), i == 0 && c.alias >= 0 ? &c.in[static_cast<size_t>(c.alias)] : &c.out[i]);
  for (size_t i = 0; i < c.in.size(); ++i)
    if (c.in[i].present() && is_state_input(c.op, i)) r.emplace_back("state input " + std::to_string(i), &c.in[i]);
  return r;
}

// Guards intact, read-only inputs unchanged, float results finite.
std::string check_run(const Case& base, const Case& run) {
  for (size_t i = 0; i < run.in.size(); ++i) {
    if (!run.in[i].present()) continue;
    if (!run.in[i].guards_intact()) return "guard bytes of input " + std::to_string(i) + " overwritten";
    const bool may_change = is_state_input(run.op, i) || static_cast<int>(i) == run.alias;
    if (!may_change && !run.in[i].same_bytes(base.in[i])) return "read-only input " + std::to_string(i) + " changed";
  }
  for (size_t i = 0; i < run.out.size(); ++i)
    if (!run.out[i].guards_intact()) return "guard bytes of output " + std::to_string(i) + " overwritten";
  for (const auto& [name, b] : results(run)) {
    if (b->dtype() != DType::f32) continue;
    for (int64_t k = 0; k < b->numel(); ++k)
      if (!std::isfinite(b->as<float>()[k]))
        return name + " element " + std::to_string(k) + " is " + std::to_string(b->as<float>()[k]) +
               " (unwritten or overflow)";
  }
  return "";
}

// max |a − b| ≤ tol · max(1, max |ref|) for f32 (tol < 0: bitwise); ints exact.
std::string compare(const Case& ref, const Case& got, double tol) {
  const auto rr = results(ref), gr = results(got);
  for (size_t r = 0; r < rr.size(); ++r) {
    const Buffer& a = *rr[r].second;
    const Buffer& b = *gr[r].second;
    if (a.dtype() != DType::f32 || tol < 0) {
      if (!a.same_bytes(b)) {
        std::ostringstream m;
        m << rr[r].first << " differs (exact comparison)";
        const size_t es = dtype_size(a.dtype());
        for (int64_t k = 0; k < a.numel(); ++k)
          if (std::memcmp(static_cast<char*>(a.data()) + k * es, static_cast<char*>(b.data()) + k * es, es)) {
            m << " first at element " << k;
            if (a.dtype() == DType::i32) m << ": " << a.as<int32_t>()[k] << " vs " << b.as<int32_t>()[k];
            if (a.dtype() == DType::f32) m << ": " << a.as<float>()[k] << " vs " << b.as<float>()[k];
            break;
          }
        return m.str();
      }
      continue;
    }
    double max_ref = 0, max_err = 0;
    int64_t worst = -1;
    for (int64_t k = 0; k < a.numel(); ++k) {
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(a.as<float>()[k])));
      const double err = std::fabs(static_cast<double>(a.as<float>()[k]) - b.as<float>()[k]);
      if (!(err <= max_err)) {
        max_err = err;
        worst = k;
      }
    }
    if (!(max_err <= tol * std::max(1.0, max_ref))) {
      std::ostringstream m;
      m << rr[r].first << ": max |diff| " << max_err << " > " << tol << " * max(1, " << max_ref << ") at element "
        << worst << " (ref " << a.as<float>()[worst] << ", got " << b.as<float>()[worst] << ")";
      return m.str();
    }
  }
  return "";
}

// Runs one case through the reference and the CPU kernels; returns "" or what went wrong.
std::string run_case(const Case& base, double tol) {
  try {
    check_op_call(base.call());
    check_op_call(base.call(true));
  } catch (const std::exception& e) {
    return std::string("check_op_call refused the case: ") + e.what();
  }
  Case ref = base;
  ref_run(ref.call());
  if (std::string m = check_run(base, ref); !m.empty()) return "ref: " + m;
  if (testing_cuda()) {
    Case one = base, two = base;
    try {
      under_test()(one.call(true));
      under_test()(two.call(true));
    } catch (const std::exception& e) {
      return std::string("cuda: ") + e.what();
    }
    if (std::string m = check_run(base, one); !m.empty()) return "cuda: " + m;
    if (std::string m = compare(ref, one, tol); !m.empty()) return "cuda vs ref: " + m;
    if (std::string m = compare(one, two, -1); !m.empty()) return "cuda: two runs not bit-identical: " + m;
    return "";
  }
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  std::string err;
  for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (isa > best) break;
    cpu_force_isa(isa);
    const std::string where = std::string("cpu[") + cpu_isa_name(isa) + "]";
    Case one = base, two = base;
    cpu_run(one.call(true), CpuContext{1});
    cpu_run(two.call(true), CpuContext{2, 0.0});  // every op splits, whatever its size
    if (std::string m = check_run(base, one); !m.empty()) err = where + " 1 thread: " + m;
    else if (std::string m2 = check_run(base, two); !m2.empty()) err = where + " 2 threads: " + m2;
    else if (std::string m3 = compare(ref, one, tol); !m3.empty()) err = where + " vs ref: " + m3;
    else if (std::string m4 = compare(one, two, -1); !m4.empty()) err = where + " 1 vs 2 threads not bit-identical: " + m4;
    if (!err.empty()) break;
  }
  cpu_force_isa(best);
  return err;
}

// Cases the backend under test refuses (CUDA: bf16 weights) are skipped, and counted visibly.
void run_all(const std::vector<Case>& cases, double tol) {
  size_t refused = 0;
  std::string why;
  for (const Case& c : cases) {
    if (testing_cuda()) {
      const std::string reason = cuda_backend().unsupported_reason(c.call());
      if (!reason.empty()) {
        ++refused;
        why = reason;
        continue;
      }
    }
    const std::string err = run_case(c, tol);
    if (!err.empty()) FAIL_CHECK(c.name << ": " << err);
  }
  if (refused) WARN(refused << " of " << cases.size() << " cases skipped: " << under_test_name() << " refuses them (" << why << ")");
  INFO(cases.size() << " cases");
  CHECK(refused < cases.size());
}

// ---------------------------------------------------------------------------------------------
// Case generators
// ---------------------------------------------------------------------------------------------
std::vector<int64_t> seq_shape(int64_t T, int64_t cols, int variant) {
  // Row-wise ops accept any leading shape; vary it: [T, c], [1, T, c], [T, 1, c]
  if (variant % 3 == 1) return {1, T, cols};
  if (variant % 3 == 2) return {T, 1, cols};
  return {T, cols};
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

std::vector<Case> linear_cases() {
  std::vector<Case> cs;
  Rng r(4);
  int variant = 0;
  const char* acts[] = {"none", "silu", "gelu"};
  struct Size { int64_t T, K, N; };
  for (Size s : {Size{1, 1, 1}, {1, 7, 3}, {1, 65, 33}, {1, 300, 67}, {1, 1024, 17}, {2, 17, 9}, {3, 7, 5},
                 {7, 33, 65}, {33, 65, 7}, {65, 3, 33}, {70, 300, 130}, {5, 16, 8}, {9, 31, 100},
                 {1, 130, 300}})  // the last: a GEMV of 19 panels, groups of 8, 8 and 3
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

// The same sizes with bf16 weight matrices (a model exported with --bf16).
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

// W as the CPU device prepares it at load (Device::prepare_weight: its private panel layout).
Buffer prepared_linear(const Buffer& W) {
  auto prep = cpu_device().prepare_weight(W.ref(), WeightUse::linear);
  REQUIRE(prep);
  Buffer p(W.dtype(), W.shape(), prep->buffer.bytes(), prep->ref.layout);
  std::memcpy(p.data(), prep->ref.data, prep->buffer.bytes());
  return p;
}

// Every f32 and bf16 case with W in the CPU's prepared layout.
std::vector<Case> linear_prepared_cases() {
  std::vector<Case> cs = linear_cases();
  for (Case& c : linear_bf16_cases()) cs.push_back(std::move(c));
  for (Case& c : cs) {
    c.prepared[static_cast<size_t>(LinearIn::W)] = prepared_linear(c.in[static_cast<size_t>(LinearIn::W)]);
    c.name += " W prepared";
  }
  return cs;
}

// EMA coefficients as the engine derives them at load: q = 1 − σ(δ)σ(α), pb = σ(δ)β, g = γ/sqrt(N).
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

struct AttnSpec {
  int64_t B, n, e, h, S;
  int W;
  bool qwk, bidir, lengths, stateful;
  std::vector<int64_t> pos;  // stateful
};

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

// ---------------------------------------------------------------------------------------------
// Helpers for the stateful invariants
// ---------------------------------------------------------------------------------------------
// Positions [t0, t1) of the sequence axis (axis 1) of a [B, n, ...] tensor.
Buffer slice_seq(const Buffer& b, int64_t t0, int64_t t1) {
  std::vector<int64_t> shape = b.shape();
  const int64_t n = shape[1];
  shape[1] = t1 - t0;
  Buffer s(b.dtype(), shape);
  const size_t row = b.bytes() / static_cast<size_t>(shape[0] * n);
  for (int64_t i = 0; i < shape[0]; ++i)
    std::memcpy(static_cast<char*>(s.data()) + i * (t1 - t0) * row, static_cast<char*>(b.data()) + (i * n + t0) * row,
                (t1 - t0) * row);
  return s;
}

// Writes `part` into positions [t0, t0 + part.n) of `whole`.
void paste_seq(Buffer& whole, const Buffer& part, int64_t t0) {
  const int64_t n = whole.shape()[1], m = part.shape()[1];
  const size_t row = whole.bytes() / static_cast<size_t>(whole.shape()[0] * n);
  for (int64_t i = 0; i < whole.shape()[0]; ++i)
    std::memcpy(static_cast<char*>(whole.data()) + (i * n + t0) * row, static_cast<char*>(part.data()) + i * m * row,
                m * row);
}

// The case for positions [t0, t1) of `whole`, continuing from the state inputs of `from`.
Case sub_chunk(const Case& whole, const Case& from, int64_t t0, int64_t t1) {
  Case c;
  c.op = whole.op;
  c.params = whole.params;
  c.name = whole.name + " chunk [" + std::to_string(t0) + ", " + std::to_string(t1) + ")";
  c.in = whole.in;
  for (size_t i = 0; i < c.in.size(); ++i) {
    if (is_state_input(c.op, i)) c.in[i] = from.in[i];
    const bool seq = (c.op == OpKind::vq_attention && i <= 3) || (c.op == OpKind::ema && i == 0);
    if (seq) c.in[i] = slice_seq(whole.in[i], t0, t1);
  }
  if (c.op == OpKind::vq_attention)
    for (int64_t b = 0; b < c.in[12].numel(); ++b) c.in[12].as<int64_t>()[b] += t0;  // pos advanced by the engine
  c.out.clear();
  auto oshape = whole.out[0].shape();
  oshape[1] = t1 - t0;
  c.out.push_back(out(DType::f32, oshape));
  return c;
}

// Runs `whole` in the pieces [cuts[i], cuts[i+1]) with `kernel`; returns the stitched case.
Case run_in_pieces(const Case& whole, const std::vector<int64_t>& cuts, const Kernel& kernel) {
  Case state = whole;  // carries the state inputs from piece to piece
  Case stitched = whole;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    Case piece = sub_chunk(whole, state, cuts[i], cuts[i + 1]);
    kernel(piece.call());
    for (size_t k = 0; k < piece.in.size(); ++k)
      if (is_state_input(whole.op, k)) state.in[k] = piece.in[k];
    paste_seq(stitched.out[0], piece.out[0], cuts[i]);
  }
  for (size_t k = 0; k < whole.in.size(); ++k)
    if (is_state_input(whole.op, k)) stitched.in[k] = state.in[k];
  return stitched;
}

// For kernel: whole == split in two (outputs within out_tol, -1 = bitwise; states exact) and
// == single steps.
void check_split_invariance(const Case& whole_case, const Kernel& kernel, const std::string& kname, double out_tol,
                            double state_tol) {
  const int64_t n = whole_case.in[0].shape()[1];
  Case whole = whole_case;
  kernel(whole.call());
  std::vector<std::vector<int64_t>> splits = {{0, n / 3, n}, {0, 1, n}, {0, n - 1, n}};
  std::vector<int64_t> steps;
  for (int64_t t = 0; t <= n; ++t) steps.push_back(t);
  splits.push_back(steps);
  for (const auto& cuts : splits) {
    Case pieces = run_in_pieces(whole_case, cuts, kernel);
    // Compare outputs and states separately (different tolerances).
    std::string err;
    {
      Case a = whole, b = pieces;
      for (size_t k = 0; k < a.in.size(); ++k)
        if (is_state_input(a.op, k)) a.in[k] = b.in[k] = Buffer();
      err = compare(a, b, out_tol);
    }
    if (err.empty()) {
      Case a = whole, b = pieces;
      a.out[0] = b.out[0];
      err = compare(a, b, state_tol);
    }
    if (!err.empty())
      FAIL_CHECK(kname << " " << whole_case.name << " split at " << shape_str(cuts) << " != whole: " << err);
  }
}

// ---------------------------------------------------------------------------------------------
// check_op_call refusals
// ---------------------------------------------------------------------------------------------
std::string refusal(const Case& c) {
  try {
    check_op_call(c.call());
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Times `f` (one warmup, then repeats until ~0.3 s); returns seconds per call.
double time_it(const std::function<void()>& f) {
  f();
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  do {
    f();
    ++reps;
  } while (seconds_since(t0) < 0.3);
  return seconds_since(t0) / reps;
}

}  // namespace

// =============================================================================================
// Per-op comparisons: reference vs CPU
// =============================================================================================
TEST_CASE("embed_tokens: backend == ref", "[embed_tokens]") { run_all(embed_cases(), 1e-6); }
TEST_CASE("embed_real: backend == ref", "[embed_real]") { run_all(embed_real_cases(), 1e-6); }
TEST_CASE("norm: backend == ref, every kind x affine", "[norm]") { run_all(norm_cases(), 1e-5); }
TEST_CASE("linear: backend == ref, GEMV and GEMM, every activation", "[linear]") { run_all(linear_cases(), 1e-5); }
TEST_CASE("linear: bf16 weights, backend == ref (CUDA refuses them: models widen at load)", "[linear]") {
  if (!testing_cuda()) return run_all(linear_bf16_cases(), 1e-5);
  for (const Case& c : linear_bf16_cases()) CHECK(!cuda_backend().unsupported_reason(c.call()).empty());
}
TEST_CASE("linear: W in the CPU device's prepared layout, backend == ref", "[linear]") {
  if (testing_cuda()) return;  // the CUDA device prepares no layout
  run_all(linear_prepared_cases(), 1e-5);
}
// One chain of FMAs per output whatever the kernel: prepared W == dense W packed by the kernel,
// and each row computed alone (GEMV, decode) == all rows at once (GEMM, prefill), bit for bit.
TEST_CASE("linear: GEMV == GEMM and prepared W == dense W, bit for bit", "[linear]") {
  if (testing_cuda()) return;  // CPU kernels only
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  std::vector<Case> cases = linear_cases();
  for (Case& c : linear_bf16_cases()) cases.push_back(std::move(c));
  for (const Case& c : cases)
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      const std::string where = c.name + " cpu[" + cpu_isa_name(isa) + "]";
      Case given = c, own = c;
      given.prepared[1] = prepared_linear(c.in[1]);
      cpu_run(given.call(true), CpuContext{2, 0.0});
      cpu_run(own.call(), CpuContext{1});
      if (const std::string err = compare(given, own, -1); !err.empty()) FAIL_CHECK(where << ": " << err);
      const int64_t T = c.in[0].numel() / c.in[0].shape().back(), K = c.in[0].shape().back();
      const int64_t N = c.in[1].shape()[0];
      for (int64_t t = 0; t < T; ++t) {
        Case row = c;
        row.in[0] = Buffer(DType::f32, {1, K});
        std::memcpy(row.in[0].data(), c.in[0].as<float>() + t * K, static_cast<size_t>(K) * 4);
        row.out[0] = out(DType::f32, {1, N});
        cpu_run(row.call(), CpuContext{1});
        if (std::memcmp(row.out[0].data(), given.out[0].as<float>() + t * N, static_cast<size_t>(N) * 4) != 0) {
          FAIL_CHECK(where << ": row " << t << " alone differs from the GEMM");
          break;
        }
      }
    }
  cpu_force_isa(best);
}
TEST_CASE("linear, embed_tokens: bf16 weights give bit for bit the result of their f32 widening", "[linear][embed_tokens]") {
  if (testing_cuda()) return;  // CPU kernels only
  std::vector<Case> cases = linear_bf16_cases();
  for (Case& c : embed_cases())
    if (c.in[1].dtype() == DType::bf16) cases.push_back(std::move(c));
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (const Case& c : cases)
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
      if (isa > best) break;
      cpu_force_isa(isa);
      for (int threads : {1, 2}) {
        Case half = c, full = c;
        full.in[1] = widened(c.in[1]);
        cpu_run(half.call(), CpuContext{threads, 0.0});
        cpu_run(full.call(), CpuContext{threads, 0.0});
        const std::string err = compare(full, half, -1);
        if (!err.empty()) FAIL_CHECK(c.name << " cpu[" << cpu_isa_name(isa) << "] " << threads << " threads: " << err);
      }
    }
  cpu_force_isa(best);
}
TEST_CASE("ema: backend == ref, causal/bidirectional, lengths, state", "[ema]") { run_all(ema_cases(), 2e-5); }
TEST_CASE("mix_gates: backend == ref", "[mix_gates]") { run_all(mix_gates_cases(), 1e-6); }
TEST_CASE("vq_codes: backend == ref exactly", "[vq_codes]") { run_all(vq_codes_cases(), 0.0); }
TEST_CASE("vq_attention: backend == ref, every mode", "[vq_attention]") { run_all(attention_cases(), 1e-5); }
TEST_CASE("mul, add, gated_residual: backend == ref, in place too", "[mul][add][gated_residual]") {
  run_all(elementwise_cases(), 1e-6);
}
TEST_CASE("mean_pool: backend == ref", "[mean_pool]") { run_all(mean_pool_cases(), 1e-6); }

// =============================================================================================
// Semantics pinned down independently of the CPU kernels
// =============================================================================================
TEST_CASE("vq_codes: ties go to the lowest code", "[vq_codes]") {
  const float C[] = {1, 0, 0, 1, 1, 0};  // codeword 2 duplicates codeword 0
  const float k1[] = {0.5f, 0.5f};        // equidistant from 0 and 1
  const float k2[] = {1, 0};              // on codewords 0 and 2
  const float k3[] = {0, 1};
  CHECK(ref_vq_code(k1, C, 3, 2) == 0);
  CHECK(ref_vq_code(k2, C, 3, 2) == 0);
  CHECK(ref_vq_code(k3, C, 3, 2) == 1);
  const std::vector<Case> cs = vq_codes_cases();
  Case ties = cs.back();
  under_test()(ties.call());
  // (.5,.5) → 0 (ties with 1, 2, 5); (1,0) → 0, not its duplicate 2; (0,1) → 1, not 5;
  // (−.5,−.5) → 3 (ties with 4); (0,0) → 0 (all tie); (3,0) → 0, not 2
  const std::vector<int32_t> expect = {0, 0, 1, 3, 0, 0};
  const std::vector<int32_t> got(ties.out[0].as<int32_t>(), ties.out[0].as<int32_t>() + 6);
  CHECK(got == expect);
}

TEST_CASE("vq_attention: the reference equals a dense softmax on a hand-checkable case", "[vq_attention]") {
  // B = 1, n = 3, e = 1, h = 1, S = 2, W = 1, causal, quantized window keys.
  Rng r(11);
  AttnSpec s{1, 3, 1, 1, 2, 1, true, false, false, false, {}};
  Case c = make_attention(r, s);
  float* q = c.in[0].as<float>();
  float* v = c.in[2].as<float>();
  int32_t* codes = c.in[3].as<int32_t>();
  float* C = c.in[4].as<float>();
  float* T = c.in[5].as<float>();
  q[0] = 1, q[1] = -1, q[2] = 2;
  v[0] = 1, v[1] = 2, v[2] = 4;
  codes[0] = 0, codes[1] = 1, codes[2] = 0;
  C[0] = 0.5f, C[1] = -1.0f;
  T[0] = 0.25f, T[1] = -0.5f;
  ref_run(c.call());
  // query 2 (q = 2): key 0 non-local (C0, no bias), key 1 local (C1, T[1]), key 2 local (C0, T[0])
  const double s0 = 2 * 0.5, s1 = 2 * -1.0 - 0.5, s2 = 2 * 0.5 + 0.25;
  const double o2 = (std::exp(s0) * 1 + std::exp(s1) * 2 + std::exp(s2) * 4) / (std::exp(s0) + std::exp(s1) + std::exp(s2));
  CHECK(c.out[0].as<float>()[2] == Approx(o2).epsilon(1e-6));
  CHECK(c.out[0].as<float>()[0] == Approx(1.0).epsilon(1e-6));  // query 0 sees only itself
}

// =============================================================================================
// Stateful invariants
// =============================================================================================
TEST_CASE("vq_attention: stateful chunk split in calls == one call == single steps", "[vq_attention]") {
  Rng r(12);
  for (int W : {0, 1, 3, 6, 40})
    for (bool qwk : {true, false})
      for (int64_t S : {1, 7}) {
        AttnSpec s{4, 13, 5, 6, S, W, qwk, false, false, true, {}};
        s.pos = mixed_positions(r, s.B, W);
        const Case c = make_attention(r, s);
        // ref: states exact (same float sums in the same order), outputs to rounding
        check_split_invariance(c, kRef, "ref", 1e-5, -1);
        // cpu: bit for bit, any thread count
        if (testing_cuda()) {  // per-code sums are added in position order however the chunk is split
          check_split_invariance(c, under_test(), "cuda", -1, -1);
        } else {  // cpu: bit for bit, any thread count
          check_split_invariance(c, cpu_kernel(1), "cpu(1)", -1, -1);
          check_split_invariance(c, cpu_kernel(2), "cpu(2)", -1, -1);
        }
        // and the final state equals the reference's
        Case a = c, b = c;
        ref_run(a.call());
        under_test()(b.call());
        a.out[0] = b.out[0];
        const std::string err = compare(a, b, -1);
        if (!err.empty()) FAIL_CHECK(c.name << ": final state " << under_test_name() << " != ref: " << err);
      }
}

TEST_CASE("vq_attention: stateful from an empty state at pos 0 == stateless causal", "[vq_attention]") {
  Rng r(13);
  for (int W : {0, 2, 9})
    for (bool qwk : {true, false}) {
      AttnSpec s{2, 11, 4, 3, 5, W, qwk, false, false, true, {0, 0}};
      Case st = make_attention(r, s);
      std::fill(st.in[7].as<int32_t>(), st.in[7].as<int32_t>() + st.in[7].numel(), -1);
      Case sl = st;  // same q, k, v, codes, C, T; no state
      sl.params.stateful = false;
      for (size_t i = 7; i <= 12; ++i) sl.in[i] = Buffer();
      for (const auto& [kname, kernel] : {std::pair<std::string, Kernel>{"ref", kRef}, {under_test_name(), under_test()}}) {
        Case a = st, b = sl;
        kernel(a.call());
        kernel(b.call());
        const double tol = kname == "ref" ? 1e-6 : -1;  // the fast sweeps take the same path: bitwise
        Case a_out = b;
        a_out.out[0] = a.out[0];
        const std::string err = compare(b, a_out, tol);
        if (!err.empty()) FAIL_CHECK(kname << " " << st.name << ": " << err);
      }
    }
}

TEST_CASE("ema: stateful split == whole == single steps", "[ema]") {
  Rng r(14);
  for (auto [B, n, d, N] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {2, 13, 7, 16}, {3, 9, 33, 2}}) {
    const Case c = make_ema(r, B, n, d, N, false, false, true);
    check_split_invariance(c, kRef, "ref", 1e-5, 1e-5);
    if (testing_cuda()) {  // the chunked scan splits time differently: equal to rounding
      check_split_invariance(c, under_test(), "cuda", 1e-5, 1e-5);
    } else {
      check_split_invariance(c, cpu_kernel(1), "cpu(1)", -1, -1);
      check_split_invariance(c, cpu_kernel(2), "cpu(2)", -1, -1);
    }
  }
}

// The state inputs of a stateful op that lead with the state's rows: ema's state; vq_attention's
// ring, cache and pos.
std::vector<size_t> row_state_inputs(OpKind op) {
  using A = VqAttentionIn;
  if (op == OpKind::ema) return {static_cast<size_t>(EmaIn::state)};
  return {static_cast<size_t>(A::ring_codes), static_cast<size_t>(A::ring_values), static_cast<size_t>(A::ring_keys),
          static_cast<size_t>(A::cache_u),    static_cast<size_t>(A::cache_n),     static_cast<size_t>(A::pos)};
}

// `c` (B rows, a B-row state) with its state embedded in a state of R rows: batch row b
// continues state row rows[b]; every other row holds a copy of some row of `c`'s state (valid
// values) and must come out untouched.
Case embed_in_rows(const Case& c, const std::vector<int32_t>& rows, int64_t R) {
  Case e = c;
  const int64_t B = static_cast<int64_t>(rows.size());
  for (size_t i : row_state_inputs(c.op)) {
    const Buffer& small = c.in[i];
    if (!small.present()) continue;
    auto shape = small.shape();
    shape[0] = R;
    Buffer big(small.dtype(), shape);
    const size_t row = small.bytes() / static_cast<size_t>(B);
    for (int64_t k = 0; k < R; ++k)  // idle rows: copies of rows of c, cycled in reverse
      std::memcpy(static_cast<char*>(big.data()) + k * row, static_cast<char*>(small.data()) + (B - 1 - k % B) * row, row);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(static_cast<char*>(big.data()) + rows[b] * row, static_cast<char*>(small.data()) + b * row, row);
    e.in[i] = std::move(big);
  }
  const size_t rows_slot = c.op == OpKind::ema ? static_cast<size_t>(EmaIn::state_rows)
                                               : static_cast<size_t>(VqAttentionIn::state_rows);
  e.in[rows_slot] = i32({B}, rows);
  e.name += " in rows " + shape_str(std::vector<int64_t>(rows.begin(), rows.end())) + " of " + std::to_string(R);
  return e;
}

TEST_CASE("stateful ops: state_rows steps chosen rows of a larger state, the others stay untouched", "[ema][vq_attention]") {
  Rng r(15);
  std::vector<Case> cases;
  for (int W : {0, 3})
    for (bool qwk : {true, false}) {
      AttnSpec s{3, 5, 4, 6, 7, W, qwk, false, false, true, {}};
      s.pos = mixed_positions(r, s.B, W);
      cases.push_back(make_attention(r, s));
    }
  cases.push_back(make_ema(r, 3, 4, 17, 4, false, false, true));
  cases.push_back(make_ema(r, 3, 1, 33, 16, false, false, true));  // the decode step
  const std::vector<int32_t> rows = {5, 0, 3};
  const int64_t R = 7;
  for (const Case& c : cases) {
    const Case e = embed_in_rows(c, rows, R);
    const double tol = c.op == OpKind::ema ? 2e-5 : 1e-5;
    if (const std::string err = run_case(e, tol); !err.empty()) FAIL_CHECK(e.name << ": " << err);
    // The rows' outputs and states equal the B-row run bit for bit; idle rows keep their bytes.
    for (const auto& [kname, kernel] : {std::pair<std::string, Kernel>{"ref", kRef}, {under_test_name(), under_test()}}) {
      Case small = c, big = e;
      kernel(small.call());
      kernel(big.call());
      if (std::memcmp(small.out[0].data(), big.out[0].data(), small.out[0].bytes()) != 0)
        FAIL_CHECK(kname << " " << e.name << ": outputs differ from the run in a state of its own rows");
      for (size_t i : row_state_inputs(c.op)) {
        if (!c.in[i].present()) continue;
        const size_t row = c.in[i].bytes() / rows.size();
        const auto* got = static_cast<const char*>(big.in[i].data());
        for (size_t b = 0; b < rows.size(); ++b)
          if (std::memcmp(got + rows[b] * row, static_cast<const char*>(small.in[i].data()) + b * row, row) != 0)
            FAIL_CHECK(kname << " " << e.name << ": input " << i << " row " << rows[b] << " differs from the small run");
        for (int64_t k = 0; k < R; ++k)
          if (std::find(rows.begin(), rows.end(), k) == rows.end() &&
              std::memcmp(got + k * row, static_cast<const char*>(e.in[i].data()) + k * row, row) != 0)
            FAIL_CHECK(kname << " " << e.name << ": idle row " << k << " of input " << i << " was written");
      }
    }
  }
}

// =============================================================================================
// check_op_call
// =============================================================================================
TEST_CASE("check_op_call refuses malformed calls and says why", "[op_check]") {
  Rng r(15);
  auto expect_refusal = [](const Case& c, std::vector<std::string> parts) {
    const std::string msg = refusal(c);
    INFO("message: " << msg);
    REQUIRE(!msg.empty());
    for (const std::string& p : parts) CHECK(msg.find(p) != std::string::npos);
  };
  const Case lin = linear_cases()[20];
  REQUIRE(refusal(lin).empty());
  {
    Case c = lin;
    c.in[1] = f32(r, {lin.in[1].shape()[0], lin.in[1].shape()[1] + 1});
    expect_refusal(c, {"linear", "input 1 (W)", "expected shape [67, 300]", "found [67, 301]"});
  }
  {
    Case c = lin;
    c.in.pop_back();
    expect_refusal(c, {"linear", "expected 3 inputs", "found 2"});
  }
  {
    Case c = lin;  // only W may be in a backend's private layout
    c.in[0] = Buffer(DType::f32, lin.in[0].shape(), lin.in[0].bytes(), 1);
    expect_refusal(c, {"linear", "input 0 (x)", "must be dense row-major", "private layout 1"});
  }
  {
    Case c = lin;
    c.in[1] = i32_rand(r, lin.in[1].shape(), 0, 1);
    expect_refusal(c, {"linear", "input 1 (W)", "expected dtype f32 or bf16, found i32"});
  }
  {
    Case c = lin;
    c.alias = 0;  // output 0 written over x: linear cannot run in place
    c.out[0] = out(DType::f32, c.in[0].shape());
    c.in[1] = f32(r, {c.in[0].shape().back(), c.in[0].shape().back()});
    c.in[2] = Buffer();
    expect_refusal(c, {"linear", "output 0 (y)", "overlaps input 0 (x)"});
  }
  AttnSpec s{2, 5, 3, 4, 6, 2, false, false, false, true, {0, 7}};
  const Case att = make_attention(r, s);
  REQUIRE(refusal(att).empty());
  {
    Case c = att;
    c.params.bidirectional = true;
    c.in[5] = f32(r, {5});
    expect_refusal(c, {"vq_attention", "stateful", "causal"});
  }
  {
    Case c = att;
    c.in[5] = f32(r, {4});
    expect_refusal(c, {"vq_attention", "input 5 (rel_bias)", "[W + 1]", "found [4]"});
  }
  {
    Case c = att;
    c.in[9] = Buffer();
    expect_refusal(c, {"vq_attention", "input 9 (ring_keys)", "missing"});
  }
  {
    Case c = att;
    c.in[3] = f32(r, {2, 5});
    expect_refusal(c, {"input 3 (codes)", "expected dtype i32", "found f32"});
  }
  {
    Case c = att;
    c.in[2] = f32(r, {2, 5, 5});
    expect_refusal(c, {"input 8 (ring_values)", "[R, W, h]"});
  }
  {
    AttnSpec t{2, 5, 3, 4, 6, 2, true, false, false, false, {}};
    Case c = make_attention(r, t);
    REQUIRE(refusal(c).empty());
    c.in[6] = i32({2}, {5, 5});  // lengths without has_lengths
    expect_refusal(c, {"input 6 (lengths)", "must be absent", "has_lengths is false"});
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    REQUIRE(refusal(c).empty());
    c.in[6] = Buffer();
    expect_refusal(c, {"ema", "input 6 (state)", "missing", "stateful"});
    Case d = make_ema(r, 2, 5, 3, 4, true, false, false);
    d.in[1] = f32(r, {3, 4});  // bidirectional needs D' = 2d rows
    expect_refusal(d, {"ema", "input 1 (q)", "[6, 4]", "2d"});
  }
  {
    Case c = norm_cases()[0];  // layernorm, affine
    c.in[2] = Buffer();
    expect_refusal(c, {"norm", "input 2 (bias)", "missing", "layernorm"});
  }
  {
    Case c = mix_gates_cases()[1];
    c.out[3] = out(DType::f32, {1, 7, 3});  // h = 3 no longer adds up to mx's width
    expect_refusal(c, {"mix_gates", "input 0 (mx)", "2d + e + h"});
  }
  {
    // A W = 0 stateful call may pass its (empty) ring as zero-size tensors or leave it out.
    AttnSpec t{2, 3, 3, 4, 6, 0, false, false, false, true, {0, 4}};
    Case c = make_attention(r, t);
    CHECK(refusal(c).empty());
    c.in[7] = c.in[8] = c.in[9] = Buffer();
    CHECK(refusal(c).empty());
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    c.in[static_cast<size_t>(EmaIn::state)] = f32(r, {4, 3, 4});  // 4 state rows, 2 batch rows, no state_rows
    expect_refusal(c, {"ema", "input 6 (state)", "4 rows but the call 2", "pass state_rows"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({3}, {0, 1, 2});
    expect_refusal(c, {"ema", "input 7 (state_rows)", "expected shape [2]"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({2}, {3, 1});
    CHECK(refusal(c).empty());
  }
  {  // descriptors name the params an op reads, and only those
    OpParams p;
    p.activation = Activation::silu;
    p.window = 7;
    CHECK(describe_op(OpKind::linear, p) == "linear(activation=1)");
    CHECK(describe_op(OpKind::add, p) == "add()");
    CHECK(describe_op(OpKind::vq_attention, p) ==
          "vq_attention(bidirectional=0, stateful=0, has_lengths=0, window=7, quantize_window_keys=1)");
  }
  {
    Case c = elementwise_cases()[1];  // mul in place of input 0
    REQUIRE(c.alias == 0);
    CHECK(refusal(c).empty());
  }
}

// =============================================================================================
// Benchmarks (hidden; run with: test_ops "[.perf]")
// =============================================================================================
TEST_CASE("perf: per-op CPU speed", "[.perf]") {
  Rng r(16);
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (isa > best) break;
    cpu_force_isa(isa);
    for (int threads : {1, 2}) {
      const CpuContext ctx{threads};
      std::ostringstream line;
      line << cpu_isa_name(isa) << " threads=" << threads << ":";
      // linear y[T, N] = x[T, K]·Wᵀ + b with W packed as a model packs it, in GFLOP/s.
      auto linear_gflops = [&](const char* label, int64_t T, int64_t K, int64_t N) {
        Case c;
        c.op = OpKind::linear;
        c.in = {f32(r, {T, K}), f32(r, {N, K}), f32(r, {N})};
        c.prepared[1] = prepared_linear(c.in[1]);
        c.out.push_back(out(DType::f32, {T, N}));
        const OpCall call = c.call(true);
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " " << label << " " << 2.0 * static_cast<double>(T * K * N) / t * 1e-9 << " GFLOP/s;";
      };
      linear_gflops("gemv1024", 1, 1024, 1024);
      linear_gflops("gemm256x1024x1024", 256, 1024, 1024);
      linear_gflops("gemm12544x64x224", 12544, 64, 224);  // fashion-seq's mx_proj, 16 × 784 pixels
      for (bool bidir : {false, true}) {  // vq_attention n = 2048, W = 64, S = 256, e = 64, h = 128
        AttnSpec s{1, 2048, 64, 128, 256, 64, true, bidir, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_attention(" << (bidir ? "bidir" : "causal") << ",n=2048,W=64,S=256,e=64,h=128) "
             << 2048 / t << " tok/s;";
      }
      {  // the fashion-seq classifier's layer shape: bidirectional, codes of every key
        AttnSpec s{16, 784, 32, 64, 64, 32, true, true, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        Case codes;
        codes.op = OpKind::vq_codes;
        codes.in = {f32(r, {16 * 784, 32}), f32(r, {64, 32})};
        codes.out.push_back(out(DType::i32, {16 * 784}));
        const OpCall codes_call = codes.call();
        const double tc = time_it([&] { cpu_run(codes_call, ctx); });
        line << " fashion-seq vq_attention(bidir,B=16,n=784,W=32,S=64,e=32,h=64) + vq_codes " << 16 * 784 / (t + tc)
             << " tok/s;";
      }
      {  // decode: B = 1, n = 1
        AttnSpec s{1, 1, 64, 128, 256, 64, true, false, false, true, {5000}};
        const Case c = make_attention(r, s);
        double t = 0;
        {
          Case run = c;
          const OpCall call = run.call();
          t = time_it([&] { cpu_run(call, ctx); });  // pos stays; the cache keeps growing
        }
        line << " vq_attention decode " << t * 1e6 << " us/token;";
      }
      {  // ema n = 2048, d = 256, N = 16
        Case c = make_ema(r, 1, 2048, 256, 16, false, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(n=2048,d=256,N=16) " << 2048 / t << " tok/s;";
      }
      {  // ema bidirectional B = 16, n = 784, d = 64, N = 16 (the fashion-seq classifier's shape)
        Case c = make_ema(r, 16, 784, 64, 16, true, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(bidir,B=16,n=784,d=64,N=16) " << 16 * 784 / t << " tok/s;";
      }
      {  // vq_codes T = 2048, e = 64, S = 256
        Case c;
        c.op = OpKind::vq_codes;
        c.in = {f32(r, {2048, 64}), f32(r, {256, 64})};
        c.out.push_back(out(DType::i32, {2048}));
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_codes(T=2048,e=64,S=256) " << 2048 / t << " keys/s";
      }
      std::printf("%s\n", line.str().c_str());
    }
  }
  cpu_force_isa(best);
  SUCCEED();
}
