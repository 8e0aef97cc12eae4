// The op harness (op_harness.h): buffers, cases, the comparison with the reference kernels.
#include "tests/ops/op_harness.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "engine/ops/op_check.h"
#include "engine/runtime/model.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/ref/ref_ops.h"
#include "tests/backend_under_test.h"

namespace longvq::optest {

Buffer f32(Rng& r, std::vector<int64_t> shape, float lo, float hi) {
  Buffer b(DType::f32, std::move(shape));
  for (int64_t i = 0; i < b.numel(); ++i) b.as<float>()[i] = r.uni(lo, hi);
  return b;
}
Buffer bf16(Rng& r, std::vector<int64_t> shape, float lo, float hi) {
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

OpCall Case::call(bool use_prepared) const {
  OpCall c{op, params, {}, {}};
  for (size_t i = 0; i < in.size(); ++i)
    c.inputs.push_back(use_prepared && prepared.count(i) ? prepared.at(i).ref() : in[i].ref());
  for (const Buffer& b : out) c.outputs.push_back(b.ref());
  if (alias >= 0) c.outputs[0].data = c.inputs[static_cast<size_t>(alias)].data;
  return c;
}

const Kernel kRef = [](const OpCall& c) { ref_run(c); };
Kernel cpu_kernel(int threads) {
  return [threads](const OpCall& c) { cpu_run(c, CpuContext{threads}); };
}

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

Kernel under_test() { return testing_cuda() ? device_kernel(cuda_backend()) : cpu_kernel(2); }
std::string under_test_name() { return testing_cuda() ? "cuda" : "cpu(2)"; }

bool is_state_input(OpKind op, size_t i) {
  using A = VqAttentionIn;
  if (op == OpKind::ema) return i == static_cast<size_t>(EmaIn::state);
  if (op == OpKind::vq_attention) return i >= static_cast<size_t>(A::ring_codes) && i <= static_cast<size_t>(A::cache_n);
  return false;
}

std::vector<std::pair<std::string, const Buffer*>> results(const Case& c) {
  std::vector<std::pair<std::string, const Buffer*>> r;
  for (size_t i = 0; i < c.out.size(); ++i)
    r.emplace_back("output " + std::to_string(i), i == 0 && c.alias >= 0 ? &c.in[static_cast<size_t>(c.alias)] : &c.out[i]);
  for (size_t i = 0; i < c.in.size(); ++i)
    if (c.in[i].present() && is_state_input(c.op, i)) r.emplace_back("state input " + std::to_string(i), &c.in[i]);
  return r;
}

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

std::pair<double, double> max_difference(const Case& ref, const Case& got) {
  const auto rr = results(ref), gr = results(got);
  double worst = 0, scale = 1;
  for (size_t r = 0; r < rr.size(); ++r) {
    if (rr[r].second->dtype() != DType::f32) continue;
    const float* a = rr[r].second->as<float>();
    const float* b = gr[r].second->as<float>();
    for (int64_t k = 0; k < rr[r].second->numel(); ++k) {
      scale = std::max(scale, std::fabs(static_cast<double>(a[k])));
      worst = std::max(worst, std::fabs(static_cast<double>(a[k]) - b[k]));
    }
  }
  return {worst, scale};
}

std::string reference_run(const Case& base, Case* ref) {
  try {
    check_op_call(base.call());
    check_op_call(base.call(true));
  } catch (const std::exception& e) {
    return std::string("check_op_call refused the case: ") + e.what();
  }
  *ref = base;
  ref_run(ref->call());
  if (std::string m = check_run(base, *ref); !m.empty()) return "ref: " + m;
  return "";
}

std::string device_runs(const Case& base, const Case& ref, double tol, const Kernel& kernel, const std::string& name,
                        Case* got) {
  Case one = base, two = base;
  try {
    kernel(one.call(true));
    kernel(two.call(true));
  } catch (const std::exception& e) {
    return name + ": " + e.what();
  }
  if (std::string m = check_run(base, one); !m.empty()) return name + ": " + m;
  if (std::string m = compare(ref, one, tol); !m.empty()) return name + " vs ref: " + m;
  if (std::string m = compare(one, two, -1); !m.empty()) return name + ": two runs not bit-identical: " + m;
  if (got) *got = std::move(one);
  return "";
}

std::string run_case(const Case& base, double tol) {
  Case ref;
  if (std::string m = reference_run(base, &ref); !m.empty()) return m;
  if (testing_cuda()) return device_runs(base, ref, tol, under_test(), "cuda");
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

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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

}  // namespace longvq::optest
