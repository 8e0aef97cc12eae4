// linear: y = act(x·Wᵀ + b), W stored [out, in].
//
// The kernels read W as panels (cpu_pack_linear_panels): 16 outputs side by side for each
// input k, so one vector load brings W[o..o+15][k] and every output is a single chain
//     acc = 0;  for k = 0, 1, …, K−1:  acc = fma(x[k], W[o][k], acc);   y = act(acc + b[o])
// vectorized across outputs, with no horizontal sums. That chain is the whole definition of an
// output's arithmetic: the microkernels differ only in how many rows of x (MR) and panels (NV)
// they keep in registers, and long K is cut into blocks whose partial sums go through y and come
// back unchanged (a float store and load are exact). So GEMV (decode, T = 1) and GEMM (prefill,
// classification) give bit-identical outputs, whatever the tiling or the thread count.
// Paths: AVX-512, AVX2+FMA (intrinsics, chosen at run time) and a portable one that GCC
// vectorizes (multiply then add: without FMA hardware a fused step would be a libm call). W may
// be bf16 (WT = uint16_t): each weight is widened in registers right after its load (exact), so a
// bf16 W gives bit for bit the result of its f32 widening, with half the bytes streamed. The CPU
// device packs every model matrix once at load (Device::prepare_weight, TensorRef::layout =
// kCpuLinearPanels); a dense W (op tests, other callers) is packed into scratch first.
#include "kernels/cpu/cpu_linear_driver.h"

namespace longvq::cpu {
namespace {

using namespace linear_driver;

template <class WT>
struct LinearArgs {
  const float* x;  // [T, K]
  const WT* W;     // panels [NP, K, 16]
  const float* b;  // [N] or null
  float* y;        // [T, N]
  int64_t T, K, N, NP, panel_bytes;
};

// --- portable ---------------------------------------------------------------------------------
inline float widen(float w) { return w; }
inline float widen(uint16_t w) { return bf16_to_f32(w); }

template <int MR, int NV, class WT>
void kernel_generic(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  float acc[MR][NV][P];
  load_acc_generic<MR, NV>(a, blk, acc);
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k)
    for (int r = 0; r < MR; ++r) {
      const float xk = xr[r][k];
      for (int v = 0; v < NV; ++v) {
        const WT* w = a.W + ((blk.p0 + v) * a.K + k) * P;
        for (int j = 0; j < P; ++j) acc[r][v][j] = acc[r][v][j] + xk * widen(w[j]);
      }
    }
  store_acc_generic<MR, NV>(a, blk, acc);
}

#if defined(__x86_64__) || defined(__i386__)
// --- AVX2 + FMA: a panel is two 8-lane halves ---------------------------------------------------
#define LONGVQ_AVX2 __attribute__((target("avx2,fma")))
LONGVQ_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
LONGVQ_AVX2 inline __m256 load8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <int MR, int NV, class WT>
LONGVQ_AVX2 void kernel_avx2(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __m256i mask[NV][2];
  masks_avx2<NV>(a.N, blk.p0, mask);
  __m256 acc[MR][NV][2];
  load_acc_avx2<MR, NV>(a, blk, mask, acc);
  const WT* w0 = a.W + blk.p0 * a.K * P;
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k) {
    __m256 w[NV][2];
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h) w[v][h] = load8(w0 + (v * a.K + k) * P + 8 * h);
    for (int r = 0; r < MR; ++r) {
      const __m256 xb = _mm256_broadcast_ss(xr[r] + k);
      for (int v = 0; v < NV; ++v)
        for (int h = 0; h < 2; ++h) acc[r][v][h] = _mm256_fmadd_ps(xb, w[v][h], acc[r][v][h]);
    }
  }
  store_acc_avx2<MR, NV>(a, blk, mask, acc);
}
#undef LONGVQ_AVX2

// --- AVX-512: a panel is one vector -------------------------------------------------------------
#define LONGVQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
LONGVQ_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
// (maskz forms with a full mask: the plain ones read _mm512_undefined, which GCC 12 warns about.)
LONGVQ_AVX512 inline __m512 load16(const uint16_t* p) {
  const __mmask16 all = 0xFFFF;
  const __m256i bf16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, bf16), 16));
}

template <int MR, int NV, class WT>
LONGVQ_AVX512 void kernel_avx512(const LinearArgs<WT>& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __mmask16 mask[NV];
  masks_avx512<NV>(a.N, blk.p0, mask);
  __m512 acc[MR][NV];
  load_acc_avx512<MR, NV>(a, blk, mask, acc);
  const WT* w0 = a.W + blk.p0 * a.K * P;
  for (int64_t k = blk.k_lo; k < blk.k_hi; ++k) {
    __m512 w[NV];
    for (int v = 0; v < NV; ++v) w[v] = load16(w0 + (v * a.K + k) * P);
    for (int r = 0; r < MR; ++r) {
      const __m512 xb = _mm512_set1_ps(xr[r][k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(xb, w[v], acc[r][v]);
    }
  }
  store_acc_avx512<MR, NV>(a, blk, mask, acc);
}
#undef LONGVQ_AVX512
#endif  // x86

// --- kernel tables -----------------------------------------------------------------------------
template <class WT>
const Kernels<LinearArgs<WT>>& kernels() {
  using A = LinearArgs<WT>;
#if defined(__x86_64__) || defined(__i386__)
  static const Kernels<A> avx512{{nullptr, kernel_avx512<1, 1, WT>, kernel_avx512<1, 2, WT>, kernel_avx512<1, 3, WT>,
                                  kernel_avx512<1, 4, WT>, kernel_avx512<1, 5, WT>, kernel_avx512<1, 6, WT>,
                                  kernel_avx512<1, 7, WT>, kernel_avx512<1, 8, WT>},
                                 8,
                                 {nullptr, kernel_avx512<6, 1, WT>, kernel_avx512<6, 2, WT>, kernel_avx512<6, 3, WT>,
                                  kernel_avx512<6, 4, WT>},
                                 4,
                                 6,
                                 // few rows: MR·NV accumulators + NV weights + 1 broadcast ≤ 32 registers
                                 {nullptr, nullptr, kernel_avx512<2, 8, WT>, kernel_avx512<3, 7, WT>,
                                  kernel_avx512<4, 5, WT>, kernel_avx512<5, 4, WT>, kernel_avx512<6, 4, WT>,
                                  kernel_avx512<7, 3, WT>, kernel_avx512<8, 3, WT>},
                                 {0, 0, 8, 7, 5, 4, 4, 3, 3},
                                 {nullptr, nullptr, kernel_avx512<2, 1, WT>, kernel_avx512<3, 1, WT>,
                                  kernel_avx512<4, 1, WT>, kernel_avx512<5, 1, WT>, kernel_avx512<6, 1, WT>,
                                  kernel_avx512<7, 1, WT>, kernel_avx512<8, 1, WT>}};
  static const Kernels<A> avx2{{nullptr, kernel_avx2<1, 1, WT>, kernel_avx2<1, 2, WT>, kernel_avx2<1, 3, WT>,
                                kernel_avx2<1, 4, WT>},
                               4,
                               {nullptr, kernel_avx2<6, 1, WT>},
                               1,
                               6};
#endif
  static const Kernels<A> generic{{nullptr, kernel_generic<1, 1, WT>, kernel_generic<1, 2, WT>},
                                  2,
                                  {nullptr, kernel_generic<4, 1, WT>},
                                  1,
                                  4};
#if defined(__x86_64__) || defined(__i386__)
  switch (cpu_isa()) {
    case CpuIsa::avx512: return avx512;
    case CpuIsa::avx2: return avx2;
    case CpuIsa::generic: break;
  }
#endif
  return generic;
}

template <class WT>
void linear_as(const OpCall& c, const CpuContext& ctx) {
  const TensorRef &xt = c.in(LinearIn::x), &wt = c.in(LinearIn::W);
  const int64_t T = xt.rows(), K = xt.cols(), N = wt.shape[0];
  if (T == 0 || N == 0) return;
  const WT* panels = wt.as<const WT>();
  if (wt.layout != kCpuLinearPanels) {  // a dense W (op tests, unprepared weights): pack into scratch
    WT* own = scratch<WT>(0, cpu_linear_panel_bytes(N, K, wt.dtype) / sizeof(WT));
    cpu_pack_linear_panels(wt, own);
    panels = own;
  }
  const LinearArgs<WT> a{xt.as<const float>(), panels, c.in_as<const float>(LinearIn::b), c.out_as<float>(OutY::y),
                         T, K, N, (N + P - 1) / P, static_cast<int64_t>(sizeof(WT)) * P * K};
  run(a, c.params.activation, ctx, kernels<WT>());
}

}  // namespace

void linear_q8(const OpCall& c, const CpuContext& ctx);  // cpu_linear_q8.cpp

void linear(const OpCall& c, const CpuContext& ctx) {
  if (c.in(LinearIn::W).dtype == DType::q8) return linear_q8(c, ctx);
  if (c.in(LinearIn::W).dtype == DType::bf16) return linear_as<uint16_t>(c, ctx);
  linear_as<float>(c, ctx);
}

}  // namespace longvq::cpu

namespace longvq {
constexpr int64_t P = kCpuLinearPanel;

size_t cpu_linear_panel_bytes(int64_t out, int64_t in, DType dtype) {
  if (dtype == DType::q8) return cpu_linear_q8_panel_bytes(out, in);
  return static_cast<size_t>((out + P - 1) / P * in * P) * dtype_size(dtype);
}

namespace {

// Element by element as T (a fixed-size memcpy is one move, and W may be unaligned in an mmap).
template <class T>
void pack_panels_as(const unsigned char* src, T* panels, int64_t out, int64_t in) {
  const int64_t count = (out + P - 1) / P;
  for (int64_t p = 0; p < count; ++p)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j < P; ++j) {
        const int64_t o = p * P + j;
        T v{};
        if (o < out) std::memcpy(&v, src + (o * in + k) * sizeof(T), sizeof(T));
        panels[(p * in + k) * P + j] = v;
      }
}

}  // namespace

void cpu_pack_linear_panels(const TensorRef& W, void* dst) {
  const int64_t out = W.shape.at(0), in = W.shape.at(1);
  if (W.dtype == DType::q8) return cpu_pack_linear_q8_panels(W, dst);
  const auto* src = static_cast<const unsigned char*>(W.data);
  if (dtype_size(W.dtype) == 2) return pack_panels_as(src, static_cast<uint16_t*>(dst), out, in);
  pack_panels_as(src, static_cast<uint32_t*>(dst), out, in);
}

}  // namespace longvq
