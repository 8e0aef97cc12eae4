// The CUDA kernels' own paths, against the reference and against each other:
//  * ema's FFT form (cuFFT convolution) for whole sequences: a backend made with
//    LONGVQ_CUDA_EMA_FFT=always or =never takes one form for every non-stateful call. Every ema
//    case and long ones (n = 2000 .. 8192, causal and bidirectional, with pads) in both forms ==
//    the fp64 reference (FFT form 5e-6, scan 2e-5 of max(1, max |ref|); an fp32 emulation of the
//    FFT form erred by ≤ 2.1e-7 on these sizes), and FFT form == scan within 2e-5. On the CPU
//    backend the long cases run on the CPU kernels (same reference, same tolerance 2e-5).
//  * "[cuda-invariants]" (hidden; tools/gpu_check.sh runs it): linear's reduction order. A row
//    computed alone (decode's GEMV) against the same row among T rows (prefill's GEMM): cuBLAS's
//    difference is reported (bit-identical or the max difference); the fixed-order kernel
//    (LONGVQ_CUDA_LINEAR=fixed) must give the same bits and match the reference.
//  * "[.perf]": the two EMA forms timed side by side, and where the FFT form starts to win.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/ops/op.h"
#include "tests/ops/op_cases.h"
#include "tests/ops/op_harness.h"
#include "tests/scoped_env.h"

using namespace longvq;
using namespace longvq::optest;

namespace {

constexpr double kFftTol = 5e-6;
constexpr double kScanTol = 2e-5;

// A CUDA backend made with var=value in the environment (a backend reads its options when made).
std::unique_ptr<Backend> cuda_backend_with(const char* var, const char* value) {
  test::ScopedEnv env(var, value);
  try {
    return device(BackendKind::cuda).make_backend(0);
  } catch (const std::exception& e) {
    FAIL("cannot make a CUDA backend with " << var << "=" << value << ": " << e.what());
  }
  return nullptr;
}

Backend& fft_backend() {
  static std::unique_ptr<Backend> be = cuda_backend_with("LONGVQ_CUDA_EMA_FFT", "always");
  return *be;
}
Backend& scan_backend() {
  static std::unique_ptr<Backend> be = cuda_backend_with("LONGVQ_CUDA_EMA_FFT", "never");
  return *be;
}

// Whole sequences long enough for the FFT form by default (n ≥ 2048) and a few shorter, odd ones.
std::vector<Case> long_ema_cases() {
  std::vector<Case> cs;
  Rng r(50);
  struct Size { int64_t B, n, d, N; bool bidir, lengths; };
  for (Size s : {Size{1, 2048, 8, 16, false, false}, {2, 2048, 4, 16, true, true}, {1, 4096, 3, 16, true, false},
                 {3, 3000, 2, 16, true, true}, {1, 8192, 2, 16, false, false}, {1, 8192, 2, 16, true, false},
                 {2, 5000, 2, 4, false, true}, {4, 2000, 3, 1, true, true}})
    cs.push_back(make_ema(r, s.B, s.n, s.d, s.N, s.bidir, s.lengths, false));
  return cs;
}

// Every form of the CUDA ema on `c`: the default backend, the FFT form, the scan (each against the
// reference, two runs bit for bit), and the two forms against each other.
void check_ema_forms(const Case& c) {
  Case ref, fft, scan;
  if (std::string err = reference_run(c, &ref); !err.empty()) FAIL(c.name << ": " << err);
  const double default_tol = c.params.stateful ? kScanTol : std::max(kScanTol, kFftTol);
  if (std::string err = device_runs(c, ref, default_tol, device_kernel(cuda_backend()), "cuda"); !err.empty())
    FAIL_CHECK(c.name << ": " << err);
  const double fft_tol = c.params.stateful ? kScanTol : kFftTol;  // stateful calls take the scan in both
  if (std::string err = device_runs(c, ref, fft_tol, device_kernel(fft_backend()), "cuda fft form", &fft); !err.empty())
    FAIL_CHECK(c.name << ": " << err);
  if (std::string err = device_runs(c, ref, kScanTol, device_kernel(scan_backend()), "cuda scan", &scan); !err.empty())
    FAIL_CHECK(c.name << ": " << err);
  if (fft.out.empty() || scan.out.empty()) return;
  if (std::string err = compare(scan, fft, kScanTol); !err.empty()) FAIL_CHECK(c.name << ": fft form vs scan: " << err);
  // The two forms round differently: identical bits on a non-trivial case would mean the FFT
  // backend quietly took the scan (e.g. a full plan cache).
  if (!c.params.stateful && c.in[0].shape()[1] >= 7 && c.in[1].shape()[1] >= 2) {
    INFO(c.name << ": the FFT form's output equals the scan's bit for bit");
    CHECK_FALSE(compare(scan, fft, -1).empty());
  }
}

}  // namespace

TEST_CASE("ema: every case in the FFT form and the scan == ref (CUDA)", "[ema][fft]") {
  if (!testing_cuda()) return;  // CUDA only: the CPU has one form, checked on these cases by "[ema]"
  for (const Case& c : ema_cases()) check_ema_forms(c);
}

TEST_CASE("ema: long whole sequences, FFT form == scan == ref", "[ema][fft]") {
  for (const Case& c : long_ema_cases()) {
    if (testing_cuda()) {
      check_ema_forms(c);
      continue;
    }
    const std::string err = run_case(c, kScanTol);
    INFO(c.name << ": " << err);
    CHECK(err.empty());
  }
}

TEST_CASE("cuda options: a bad LONGVQ_CUDA_* value is refused with a message", "[ema][linear]") {
  if (!testing_cuda()) return;  // the options belong to the CUDA backend
  auto refused = [](const char* var, const char* value) {
    test::ScopedEnv env(var, value);
    try {
      device(BackendKind::cuda).make_backend(0);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(refused("LONGVQ_CUDA_EMA_FFT", "sometimes"), Catch::Contains("auto, always, never"));
  CHECK_THAT(refused("LONGVQ_CUDA_EMA_FFT", "0"), Catch::Contains("'0'"));
  CHECK_THAT(refused("LONGVQ_CUDA_LINEAR", "fast"), Catch::Contains("cublas or fixed"));
}

// ---------------------------------------------------------------------------------------------
// [cuda-invariants]: does a row's product depend on how many rows share the call?
// ---------------------------------------------------------------------------------------------
namespace {

// Row 0 of a T-row linear call against the same row alone, on `be`: {bit-identical, max |diff|}.
std::pair<bool, double> row_alone_vs_batched(Backend& be, int64_t K, int64_t N, int64_t T, uint32_t seed) {
  Rng r(seed);
  const float w = 2.0f / std::sqrt(static_cast<float>(K));
  Case batch;
  batch.op = OpKind::linear;
  batch.in = {f32(r, {T, K}), f32(r, {N, K}, -w, w), Buffer()};
  batch.out.push_back(out(DType::f32, {T, N}));
  Case alone = batch;
  alone.in[0] = Buffer(DType::f32, {1, K});
  std::memcpy(alone.in[0].data(), batch.in[0].data(), static_cast<size_t>(K) * sizeof(float));
  alone.out[0] = out(DType::f32, {1, N});
  device_kernel(be)(batch.call());
  device_kernel(be)(alone.call());
  const float* a = alone.out[0].as<float>();
  const float* b = batch.out[0].as<float>();
  double worst = 0;
  for (int64_t o = 0; o < N; ++o) worst = std::max(worst, std::fabs(static_cast<double>(a[o]) - b[o]));
  return {std::memcmp(a, b, static_cast<size_t>(N) * sizeof(float)) == 0, worst};
}

}  // namespace

TEST_CASE("cuda-invariants: linear, a row alone == the same row among T rows", "[.cuda-invariants][linear]") {
  if (!testing_cuda()) FAIL("run with --backend cuda");
  static std::unique_ptr<Backend> fixed = cuda_backend_with("LONGVQ_CUDA_LINEAR", "fixed");
  // The fixed-order kernel computes every linear case right.
  for (const Case& c : linear_cases()) {
    Case ref;
    if (std::string err = reference_run(c, &ref); !err.empty()) FAIL(c.name << ": " << err);
    if (std::string err = device_runs(c, ref, 1e-5, device_kernel(*fixed), "cuda fixed-order linear"); !err.empty())
      FAIL_CHECK(c.name << ": " << err);
  }
  // Shapes of the shipped models and the 100 M one (in → out), rows of decode batches and prefills.
  struct Shape { int64_t K, N; };
  int cublas_differs = 0, cases = 0;
  for (Shape s : {Shape{128, 256}, {128, 578}, {256, 128}, {1024, 2048}, {1024, 2592}, {2048, 1024}})
    for (int64_t T : {2, 3, 8, 16, 64, 512}) {
      const uint32_t seed = static_cast<uint32_t>(s.K * 7 + s.N * 3 + T);
      const auto [cublas_same, cublas_diff] = row_alone_vs_batched(cuda_backend(), s.K, s.N, T, seed);
      const auto [fixed_same, fixed_diff] = row_alone_vs_batched(*fixed, s.K, s.N, T, seed);
      ++cases;
      cublas_differs += !cublas_same;
      std::printf("cuda-invariants: linear in=%lld out=%lld rows=%lld: cuBLAS row alone vs batched %s (max |diff| %.3g); "
                  "fixed order %s\n",
                  static_cast<long long>(s.K), static_cast<long long>(s.N), static_cast<long long>(T),
                  cublas_same ? "bit-identical" : "DIFFERS", cublas_diff, fixed_same ? "bit-identical" : "DIFFERS");
      INFO("in " << s.K << " out " << s.N << " rows " << T << ": max |diff| " << fixed_diff);
      CHECK(fixed_same);
    }
  std::printf("cuda-invariants: cuBLAS: a row alone differs from the same row in a batch in %d of %d shapes\n",
              cublas_differs, cases);
}

// ---------------------------------------------------------------------------------------------
// [.perf]: the EMA's two forms, timed (tools/gpu_check.sh reports this)
// ---------------------------------------------------------------------------------------------
namespace {

// A case's tensors in backend memory once; times be.run on them (no copies in the loop).
double time_on_device(Backend& be, const Case& c) {
  std::vector<BackendBuffer> buffers;
  OpCall call = c.call();
  auto place = [&](TensorRef& t) {
    if (!tensor_present(t)) return;
    buffers.emplace_back(be, t.nbytes());
    be.upload(buffers.back().data(), t.data, t.nbytes());
    t.data = buffers.back().data();
  };
  for (TensorRef& t : call.inputs) place(t);
  for (TensorRef& t : call.outputs) place(t);
  for (int i = 0; i < 2; ++i) be.run(call);  // warm: plans, scratch, module loading
  be.synchronize();
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  do {
    for (int i = 0; i < 5; ++i) be.run(call);
    be.synchronize();
    reps += 5;
  } while (seconds_since(t0) < 0.2);
  return seconds_since(t0) / reps;
}

}  // namespace

TEST_CASE("perf: CUDA ema, FFT form vs chunked scan", "[.perf]") {
  if (!testing_cuda()) {
    std::printf("perf: the CUDA ema forms need --backend cuda\n");
    return;
  }
  Rng r(51);
  struct Shape { int64_t B, d; bool bidir; const char* like; };
  for (Shape s : {Shape{16, 64, true, "fashion-seq/listops classify batch"}, {1, 64, true, "one classifier sequence"},
                  {1, 1024, false, "100M LM forward"}, {8, 1024, false, "100M LM forward, 8 sequences"}}) {
    int64_t crossover = 0;
    for (int64_t n : {256, 512, 1024, 2048, 4096, 8192, 16384}) {
      if (s.B * s.d * n > (int64_t{1} << 26)) break;  // keep the buffers well inside the FFT form's cap
      const Case c = make_ema(r, s.B, n, s.d, 16, s.bidir, false, false);
      const double scan = time_on_device(scan_backend(), c), fft = time_on_device(fft_backend(), c);
      if (fft < scan && crossover == 0) crossover = n;
      if (fft >= scan) crossover = 0;  // the FFT form wins from here on, or not yet
      std::printf("perf: ema B=%lld d=%lld N=16 %s n=%lld: scan %.1f us, fft form %.1f us (fft/scan %.2f)\n",
                  static_cast<long long>(s.B), static_cast<long long>(s.d), s.bidir ? "bidirectional" : "causal",
                  static_cast<long long>(n), scan * 1e6, fft * 1e6, fft / scan);
    }
    std::printf("perf: ema crossover (%s, B=%lld d=%lld): %s\n", s.like, static_cast<long long>(s.B),
                static_cast<long long>(s.d),
                crossover ? ("the FFT form is faster from n = " + std::to_string(crossover)).c_str()
                          : "the FFT form is not faster at any measured length");
  }
  SUCCEED();
}
