// ema for whole sequences in the FFT form (MEGA's parallel forward, with cuFFT), and the choice
// between it and the chunked scan (cuda_ema_scan.cu).
//
// A non-stateful ema is a convolution with the kernel k[c', t] = Σ_m g·pb·q^t (longvq-model.md
// §2.2, the reference ref_ema.cpp):
//   y[b,t,c] = Σ_{j≤t} k[c, t−j]·xm[b,j,c]   (+ Σ_{j≥t} k[c+d, j−t]·xm[b,j,c] when bidirectional)
// with xm = x zeroed at pads (t ≥ lengths[b]) before the sum, then X' = φ(y + ω·x) with the raw x.
// Both sums are one circular convolution of length F ≥ 2n − 1 (long enough that nothing wraps
// around) with the combined kernel
//   K[c, 0] = k[c, 0] (+ k[c+d, 0]: lag 0 counted twice, as MEGA and the scan do),
//   K[c, t] = k[c, t] for 0 < t < n,   K[c, F − s] = k[c+d, s] for 0 < s < n (the backward
//   kernel reversed), 0 elsewhere,
// so y = irfft(rfft(xm) · rfft(K)) / F. F is the smallest 2^k·{1, 5/4, 3/2, 7/4} ≥ 2n − 1: radices
// cuFFT is fast at, and few distinct sizes, hence few plans.
//
// Layout: time-major with the (b, c) pairs side by side, xp[t][b·d + c] (R = B·d columns), so
// packing x, building K [F][d] and writing y are coalesced elementwise kernels, and one batched
// plan of stride R and distance 1 transforms every sequence of the call. Kernels, one thread per
// element: pack xp (pads and t ≥ n are 0), build K (powf per term, fp32 sums over m in order),
// R2C of both, multiply the spectra, C2R into xp's memory, y = φ(yp/F + ω·x).
//
// Plans: cuFFT plan creation allocates memory and cannot be captured into a CUDA graph. So
// cuda_prepare (which the backend calls outside any capture, before running or recording a
// call) makes the plans; they are cached per backend by (direction, F, batch) and never
// evicted while the backend lives, so the plans a recorded graph executes stay valid. When the
// cache is full (kMaxFftPlans), or the call would need more than kMaxFftScratchBytes, a new
// size takes the scan instead: both are exact to fp32 rounding. During a capture a missing plan
// is never made (the call would take the scan; cuda_prepare made sure it is not missing). The
// work areas are the backend's kernel scratch, set before every execution (the scratch moves
// when it grows; the backend drops its recorded graphs then).
//
// Rounding: an fp32 FFT convolution errs relative to the whole sum, ~2e-7 of max |y| in an
// fp32 emulation at n ≤ 8192 (torch's fp32 FFT); the scan errs along its chains. The op tests
// compare both with the fp64 reference (tests/ops/test_ops_cuda.cpp).
#include <cufft.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "kernels/cuda/cuda_common.cuh"

namespace longvq {

struct CudaFftPlans {
  struct Plan {
    cufftHandle handle = 0;
    size_t work_bytes = 0;
  };
  std::map<std::tuple<int, int64_t, int64_t>, Plan> plans;  // (cufftType, F, batch)
};

CudaFftPlans* cuda_fft_plans_create() { return new CudaFftPlans(); }

void cuda_fft_plans_destroy(CudaFftPlans* cache) {
  if (!cache) return;
  for (auto& entry : cache->plans) cufftDestroy(entry.second.handle);  // errors cannot be reported here
  delete cache;
}

namespace cuda {
namespace {

using Plan = CudaFftPlans::Plan;

constexpr size_t kMaxFftPlans = 128;  // ≤ 3 per call shape (F, B·d); a plan without work area is small
constexpr size_t kMaxFftScratchBytes = size_t{2} << 30;      // beyond: the scan (it needs none)
constexpr size_t kAlign = 256;

size_t align_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED (out of device memory)";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "a cufftResult not named here (see cufft.h)";
  }
}

void check_cufft(cufftResult r, const char* what) {
  if (r != CUFFT_SUCCESS) throw std::runtime_error(std::string(what) + " failed: " + cufft_result_name(r));
}

// The smallest 2^k·{1, 5/4, 3/2, 7/4} ≥ m (k ≥ 2).
int64_t fft_length(int64_t m) {
  for (int64_t p = 4;; p *= 2)
    for (int64_t num : {4, 5, 6, 7})
      if (p * num / 4 >= m) return p * num / 4;
}

// The cached plan of `batch` transforms of length F in the interleaved layout (element t of
// sequence β at t·batch + β, real and complex alike), made when missing and may_create; null
// when it is missing and cannot be made now (during a capture, or the cache is full).
const Plan* find_plan(CudaFftPlans& cache, cufftType type, int64_t F, int64_t batch, cudaStream_t stream,
                      bool may_create) {
  const auto key = std::make_tuple(static_cast<int>(type), F, batch);
  if (auto it = cache.plans.find(key); it != cache.plans.end()) return &it->second;
  if (!may_create || cache.plans.size() >= kMaxFftPlans) return nullptr;
  Plan plan;
  check_cufft(cufftCreate(&plan.handle), "cufftCreate");
  long long n[1] = {F};
  long long real_embed[1] = {F}, complex_embed[1] = {F / 2 + 1};
  const bool r2c = type == CUFFT_R2C;
  try {
    check_cufft(cufftSetAutoAllocation(plan.handle, 0), "cufftSetAutoAllocation");  // work area: our scratch
    check_cufft(cufftMakePlanMany64(plan.handle, 1, n, r2c ? real_embed : complex_embed, batch, 1,
                                    r2c ? complex_embed : real_embed, batch, 1, type, batch, &plan.work_bytes),
                "cufftMakePlanMany64 (ema)");
    check_cufft(cufftSetStream(plan.handle, stream), "cufftSetStream");
  } catch (...) {
    cufftDestroy(plan.handle);
    throw;
  }
  return &cache.plans.emplace(key, plan).first->second;
}

// The FFT form's plans and scratch carve for one call.
struct FftSetup {
  const Plan* x_forward;  // R2C of the R = B·d input sequences
  const Plan* k_forward;  // R2C of the d kernels (the same plan when B = 1)
  const Plan* inverse;    // C2R of the R products
  int64_t F, bins, R;
  size_t xp, spectrum, kernel, kernel_spectrum, work, bytes;  // byte offsets into the scratch; total
};

// The FFT form for `c`, or nothing when the call takes the scan: stateful, no EMA orders,
// shorter than the threshold, too large, or no plans to be had.
std::optional<FftSetup> fft_setup(const OpCall& c, const CudaContext& ctx, bool may_create) {
  using I = EmaIn;
  if (c.params.stateful || !ctx.fft) return std::nullopt;
  const int64_t B = c.in(I::x).shape[0], n = c.in(I::x).shape[1], d = c.in(I::x).shape[2];
  const int64_t N = c.in(I::q).shape[1];
  if (B * n * d == 0 || N == 0 || n < ctx.options.ema_fft_min_length) return std::nullopt;
  FftSetup s{};
  s.F = fft_length(2 * n - 1);
  s.bins = s.F / 2 + 1;
  s.R = B * d;
  const auto floats = [](int64_t count) { return align_up(static_cast<size_t>(count) * sizeof(float)); };
  s.xp = 0;
  s.spectrum = s.xp + floats(s.F * s.R);
  s.kernel = s.spectrum + floats(2 * s.bins * s.R);
  s.kernel_spectrum = s.kernel + floats(s.F * d);
  s.work = s.kernel_spectrum + floats(2 * s.bins * d);
  if (s.work > kMaxFftScratchBytes) return std::nullopt;
  const cudaStream_t stream = stream_of(ctx);
  s.x_forward = find_plan(*ctx.fft, CUFFT_R2C, s.F, s.R, stream, may_create);
  s.k_forward = s.R == d ? s.x_forward : find_plan(*ctx.fft, CUFFT_R2C, s.F, d, stream, may_create);
  s.inverse = find_plan(*ctx.fft, CUFFT_C2R, s.F, s.R, stream, may_create);
  if (!s.x_forward || !s.k_forward || !s.inverse) return std::nullopt;
  s.bytes = s.work + std::max({s.x_forward->work_bytes, s.k_forward->work_bytes, s.inverse->work_bytes});
  return s;
}

// xp[t][b·d + c] = xm[b, t, c]: x where t < lengths[b], else 0 (pads zeroed before the sum; t ≥ n too).
__global__ void pack_kernel(const float* __restrict__ x, const int32_t* __restrict__ lengths, float* __restrict__ xp,
                            int64_t n, int64_t d, int64_t R, int64_t F) {
  LONGVQ_GRID_STRIDE(idx, F * R) {
    const int64_t t = idx / R, col = idx % R, b = col / d, c = col % d;
    xp[idx] = t < valid_length(lengths, b, n) ? x[(b * n + t) * d + c] : 0.0f;
  }
}

// k[row, t] = Σ_m g·pb·q^t, fp32, m in order (q^t by powf: a few ulp for any t).
__device__ float kernel_value(const float* q, const float* pb, const float* g, int64_t row, int64_t N, int64_t t) {
  float s = 0.0f;
  for (int64_t m = 0; m < N; ++m) {
    const int64_t i = row * N + m;
    s = fmaf(g[i] * pb[i], powf(q[i], static_cast<float>(t)), s);
  }
  return s;
}

// K[t][c], the combined kernel of the header.
__global__ void conv_kernel_kernel(const float* __restrict__ q, const float* __restrict__ pb, const float* __restrict__ g,
                                   float* __restrict__ K, int64_t n, int64_t d, int64_t N, int64_t F, bool bidir) {
  LONGVQ_GRID_STRIDE(idx, F * d) {
    const int64_t t = idx / d, c = idx % d;
    float v = 0.0f;
    if (t < n) {
      v = kernel_value(q, pb, g, c, N, t);                                 // forward: lag t
      if (bidir && t == 0) v += kernel_value(q, pb, g, d + c, N, 0);       // lag 0 counted twice
    } else if (bidir && t > F - n) {
      v = kernel_value(q, pb, g, d + c, N, F - t);                         // backward: lag F − t, reversed
    }
    K[idx] = v;
  }
}

// X[f][col] *= KF[f][col mod d] (complex).
__global__ void multiply_kernel(cufftComplex* __restrict__ X, const cufftComplex* __restrict__ KF, int64_t R, int64_t d,
                                int64_t bins) {
  LONGVQ_GRID_STRIDE(idx, bins * R) {
    const int64_t f = idx / R, c = (idx % R) % d;
    const cufftComplex a = X[idx], k = KF[f * d + c];
    X[idx] = make_float2(a.x * k.x - a.y * k.y, a.x * k.y + a.y * k.x);
  }
}

// y[b, t, c] = φ(yp[t][b·d + c] / F + ω[c]·x[b, t, c]) (cuFFT's inverse is unnormalized; raw x).
__global__ void output_kernel(const float* __restrict__ yp, const float* __restrict__ x, const float* __restrict__ omega,
                              float* __restrict__ y, int64_t n, int64_t d, int64_t R, float inv_F) {
  LONGVQ_GRID_STRIDE(idx, R * n) {
    const int64_t c = idx % d, bt = idx / d, t = bt % n, b = bt / n;
    y[idx] = silu_f(yp[t * R + b * d + c] * inv_F + omega[c] * x[idx]);
  }
}

void ema_fft(const OpCall& c, const CudaContext& ctx, const FftSetup& s) {
  using I = EmaIn;
  const int64_t n = c.in(I::x).shape[1], d = c.in(I::x).shape[2], N = c.in(I::q).shape[1];
  char* base = static_cast<char*>(ctx.scratch);
  float* xp = reinterpret_cast<float*>(base + s.xp);
  auto* spectrum = reinterpret_cast<cufftComplex*>(base + s.spectrum);
  float* kernel = reinterpret_cast<float*>(base + s.kernel);
  auto* kernel_spectrum = reinterpret_cast<cufftComplex*>(base + s.kernel_spectrum);
  void* work = base + s.work;
  const cudaStream_t stream = stream_of(ctx);
  const int32_t* lengths = c.params.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  const float* x = c.in_as<const float>(I::x);

  pack_kernel<<<elementwise_blocks(s.F * s.R), kElementwiseThreads, 0, stream>>>(x, lengths, xp, n, d, s.R, s.F);
  check_launch("ema pack_kernel");
  conv_kernel_kernel<<<elementwise_blocks(s.F * d), kElementwiseThreads, 0, stream>>>(
      c.in_as<const float>(I::q), c.in_as<const float>(I::pb), c.in_as<const float>(I::g), kernel, n, d, N, s.F,
      c.params.bidirectional);
  check_launch("ema conv_kernel_kernel");
  auto forward = [&](const Plan* plan, float* in, cufftComplex* out) {
    check_cufft(cufftSetWorkArea(plan->handle, work), "cufftSetWorkArea");
    check_cufft(cufftExecR2C(plan->handle, in, out), "cufftExecR2C (ema)");
  };
  forward(s.x_forward, xp, spectrum);
  forward(s.k_forward, kernel, kernel_spectrum);
  multiply_kernel<<<elementwise_blocks(s.bins * s.R), kElementwiseThreads, 0, stream>>>(spectrum, kernel_spectrum, s.R, d,
                                                                                        s.bins);
  check_launch("ema multiply_kernel");
  check_cufft(cufftSetWorkArea(s.inverse->handle, work), "cufftSetWorkArea");
  check_cufft(cufftExecC2R(s.inverse->handle, spectrum, xp), "cufftExecC2R (ema)");  // xp is free again
  output_kernel<<<elementwise_blocks(s.R * n), kElementwiseThreads, 0, stream>>>(
      xp, x, c.in_as<const float>(I::omega), c.out_as<float>(OutY::y), n, d, s.R, 1.0f / static_cast<float>(s.F));
  check_launch("ema output_kernel");
}

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream, &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace

size_t ema_prepare(const OpCall& c, const CudaContext& ctx) {
  const std::optional<FftSetup> s = fft_setup(c, ctx, true);
  return s ? s->bytes : 0;
}

void ema(const OpCall& c, const CudaContext& ctx) {
  if (!c.params.stateful)
    if (const std::optional<FftSetup> s = fft_setup(c, ctx, !capturing(stream_of(ctx)))) return ema_fft(c, ctx, *s);
  ema_scan(c, ctx);
}

}  // namespace cuda
}  // namespace longvq
