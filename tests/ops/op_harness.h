// The op harness shared by the op tests (test_ops.cpp: every op on every backend;
// test_ops_cuda.cpp: the CUDA kernels' own paths): tensors between guard bytes, cases, the
// comparison against the reference kernels and the checks every run must pass.
//
// A case runs the reference kernel (kernels/ref) and the backend under test on identical inputs,
// then
//  * compare: max |got − ref| ≤ tol · max(1, max |ref|) per output (codes and other ints exact),
//  * every tensor sits between guard bytes that must stay untouched, outputs start as NaN and
//    must end finite, read-only inputs must be unchanged,
//  * 1 thread and 2 threads (cpu), or two runs (cuda), must agree bit for bit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/ops/op.h"

namespace longvq::optest {

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

Buffer f32(Rng& r, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f);
// A bf16 weight matrix (random f32 values rounded to nearest even), and its exact f32 widening.
Buffer bf16(Rng& r, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f);
Buffer widened(const Buffer& b16);
Buffer f32_fill(std::vector<int64_t> shape, float v);
Buffer i32(std::vector<int64_t> shape, const std::vector<int32_t>& values);
Buffer i32_rand(Rng& r, std::vector<int64_t> shape, int32_t lo, int32_t hi);
Buffer i64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
// An output: poisoned with NaN (f32) or 0x7f7f7f7f (ints), so an unwritten element shows.
Buffer out(DType t, std::vector<int64_t> shape);
std::string shape_str(const std::vector<int64_t>& s);

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

  OpCall call(bool use_prepared = false) const;
};

using Kernel = std::function<void(const OpCall&)>;
extern const Kernel kRef;
Kernel cpu_kernel(int threads);
// Runs a host call on a backend with its own memory (CUDA): every present tensor is copied to
// backend memory between guard bytes, the op runs, then every tensor is copied back and its
// guards checked, so the harness's checks (guards, read-only inputs, states) apply unchanged.
// An output aliasing an input (in place) shares that input's copy.
Kernel device_kernel(Backend& be);

bool testing_cuda();
// The CUDA backend the op tests use (made on first use, with the process's environment).
Backend& cuda_backend();
// The kernel of the backend under test (cpu: 2 threads), and its name in messages.
Kernel under_test();
std::string under_test_name();

// Inputs a kernel updates in place (states).
bool is_state_input(OpKind op, size_t i);
// What a run produced: outputs (or the aliased input) and updated states, by name.
std::vector<std::pair<std::string, const Buffer*>> results(const Case& c);
// Guards intact, read-only inputs unchanged, float results finite.
std::string check_run(const Case& base, const Case& run);
// max |a − b| ≤ tol · max(1, max |ref|) for f32 (tol < 0: bitwise); ints exact.
std::string compare(const Case& ref, const Case& got, double tol);
// The largest |ref − got| over the f32 results, and max(1, max |ref|): for reports.
std::pair<double, double> max_difference(const Case& ref, const Case& got);

// Runs one case through the reference and the backend under test; returns "" or what went wrong.
std::string run_case(const Case& base, double tol);
// check_op_call accepts the case (dense and prepared) and the reference runs clean: "" with the
// reference's results in *ref, or what went wrong.
std::string reference_run(const Case& base, Case* ref);
// Two runs of `kernel` (`name` in messages) on `base`: clean, within tol of `ref`, bit-identical to
// each other; "" or what went wrong. *got, when given, receives the first run.
std::string device_runs(const Case& base, const Case& ref, double tol, const Kernel& kernel, const std::string& name,
                        Case* got = nullptr);
// Cases the backend under test refuses (CUDA: bf16 weights) are skipped, and counted visibly.
void run_all(const std::vector<Case>& cases, double tol);

double seconds_since(std::chrono::steady_clock::time_point t0);
// Times `f` (one warmup, then repeats until ~0.3 s); returns seconds per call.
double time_it(const std::function<void()>& f);

}  // namespace longvq::optest
