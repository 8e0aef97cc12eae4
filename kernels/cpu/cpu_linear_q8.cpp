// linear with a q8_0 weight matrix (DType::q8, engine/ops/op.h): int8 values, one scale per block
// of 32 inputs of an output row.
//
// The same arithmetic as the f32 kernels of cpu_linear.cpp, on the same panels of 16 outputs:
//     acc = 0;  for k = 0, 1, …, K−1:  acc = fma(x[k], w[o][k], acc);   y = act(acc + b[o])
// with w[o][k] = float(q[o][k]) · scale[o][k/32] computed in registers right after the load
// (exact: a file's scales are f16, so the product has at most 19 significant bits). So a q8 W
// gives bit for bit what the f32 kernel of the same instruction set gives on the dequantized
// matrix (the portable path: multiply then add, as its f32 twin), and GEMV == GEMM, 1 thread ==
// n threads, as there. The bytes streamed per weight are 1 + 4/32 (a block's 16 f32 scales sit
// in front of its 32 × 16 int8 values), against 4 for f32 and 2 for bf16.
//
// Panel layout (kCpuLinearPanels for a q8 W): panel p (outputs 16p..16p+15) is q8_blocks(K)
// blocks of kBlockBytes = 64 + 512 bytes: 16 f32 scales (lane j = output 16p+j), then 32 rows
// of 16 int8 values (row i = input 32b+i); padded outputs and inputs are 0.
#include "kernels/cpu/cpu_linear_driver.h"

namespace longvq::cpu {
namespace {

using namespace linear_driver;

constexpr int64_t KB = kQ8Block;             // inputs per block
constexpr int64_t kScaleBytes = P * 4;       // 64
constexpr int64_t kBlockBytes = kScaleBytes + KB * P;  // 576: a multiple of 64

struct Args {
  const float* x;           // [T, K]
  const unsigned char* W;   // panels, the layout above
  const float* b;           // [N] or null
  float* y;                 // [T, N]
  int64_t T, K, N, NP, panel_bytes;

  const float* scales(int64_t p, int64_t blk) const {
    return reinterpret_cast<const float*>(W + p * panel_bytes + blk * kBlockBytes);
  }
  const int8_t* values(int64_t p, int64_t k) const {  // the 16 values of input k in panel p
    return reinterpret_cast<const int8_t*>(W + p * panel_bytes + k / KB * kBlockBytes + kScaleBytes + k % KB * P);
  }
};

// --- portable ---------------------------------------------------------------------------------
template <int MR, int NV>
void kernel_generic(const Args& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  float acc[MR][NV][P];
  load_acc_generic<MR, NV>(a, blk, acc);
  for (int64_t k0 = blk.k_lo; k0 < blk.k_hi; k0 += KB) {
    float s[NV][P];
    for (int v = 0; v < NV; ++v) std::memcpy(s[v], a.scales(blk.p0 + v, k0 / KB), sizeof s[v]);
    for (int64_t k = k0; k < std::min(k0 + KB, blk.k_hi); ++k)
      for (int v = 0; v < NV; ++v) {
        const int8_t* q = a.values(blk.p0 + v, k);
        float w[P];
        for (int j = 0; j < P; ++j) w[j] = q8_value(q[j], s[v][j]);
        for (int r = 0; r < MR; ++r) {
          const float xk = xr[r][k];
          for (int j = 0; j < P; ++j) acc[r][v][j] = acc[r][v][j] + xk * w[j];
        }
      }
  }
  store_acc_generic<MR, NV>(a, blk, acc);
}

#if defined(__x86_64__) || defined(__i386__)
// --- AVX2 + FMA: a panel is two 8-lane halves ---------------------------------------------------
#define LONGVQ_AVX2 __attribute__((target("avx2,fma")))
LONGVQ_AVX2 inline __m256 widen8(const int8_t* q, __m256 s) {
  const __m256i wide = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(wide), s);
}

template <int MR, int NV>
LONGVQ_AVX2 void kernel_avx2(const Args& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __m256i mask[NV][2];
  masks_avx2<NV>(a.N, blk.p0, mask);
  __m256 acc[MR][NV][2];
  load_acc_avx2<MR, NV>(a, blk, mask, acc);
  for (int64_t k0 = blk.k_lo; k0 < blk.k_hi; k0 += KB) {
    __m256 s[NV][2];
    for (int v = 0; v < NV; ++v)
      for (int h = 0; h < 2; ++h) s[v][h] = _mm256_loadu_ps(a.scales(blk.p0 + v, k0 / KB) + 8 * h);
    const int64_t k1 = std::min(k0 + KB, blk.k_hi);
    for (int64_t k = k0; k < k1; ++k) {
      __m256 xb[MR];
      for (int r = 0; r < MR; ++r) xb[r] = _mm256_broadcast_ss(xr[r] + k);
      for (int v = 0; v < NV; ++v) {
        const int8_t* q = a.values(blk.p0 + v, k);
        for (int h = 0; h < 2; ++h) {
          const __m256 w = widen8(q + 8 * h, s[v][h]);
          for (int r = 0; r < MR; ++r) acc[r][v][h] = _mm256_fmadd_ps(xb[r], w, acc[r][v][h]);
        }
      }
    }
  }
  store_acc_avx2<MR, NV>(a, blk, mask, acc);
}
#undef LONGVQ_AVX2

// --- AVX-512: a panel is one vector -------------------------------------------------------------
#define LONGVQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
// (maskz forms with a full mask: the plain ones read _mm512_undefined, which GCC 12 warns about.)
LONGVQ_AVX512 inline __m512 widen16(const int8_t* q, __m512 s) {
  const __mmask16 all = 0xFFFF;
  const __m512i wide = _mm512_maskz_cvtepi8_epi32(all, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  return _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, wide), s);
}

template <int MR, int NV>
LONGVQ_AVX512 void kernel_avx512(const Args& a, const Block& blk) {
  const float* xr[MR];
  row_pointers<MR>(a, blk, xr);
  __mmask16 mask[NV];
  masks_avx512<NV>(a.N, blk.p0, mask);
  __m512 acc[MR][NV];
  load_acc_avx512<MR, NV>(a, blk, mask, acc);
  for (int64_t k0 = blk.k_lo; k0 < blk.k_hi; k0 += KB) {
    __m512 s[NV];
    for (int v = 0; v < NV; ++v) s[v] = _mm512_loadu_ps(a.scales(blk.p0 + v, k0 / KB));
    const int64_t k1 = std::min(k0 + KB, blk.k_hi);
    for (int64_t k = k0; k < k1; ++k) {
      __m512 xb[MR];
      for (int r = 0; r < MR; ++r) xb[r] = _mm512_set1_ps(xr[r][k]);
      for (int v = 0; v < NV; ++v) {
        const __m512 w = widen16(a.values(blk.p0 + v, k), s[v]);
        for (int r = 0; r < MR; ++r) acc[r][v] = _mm512_fmadd_ps(xb[r], w, acc[r][v]);
      }
    }
  }
  store_acc_avx512<MR, NV>(a, blk, mask, acc);
}
#undef LONGVQ_AVX512
#endif  // x86

// --- kernel table -------------------------------------------------------------------------------
const Kernels<Args>& kernels() {
#if defined(__x86_64__) || defined(__i386__)
  static const Kernels<Args> avx512{{nullptr, kernel_avx512<1, 1>, kernel_avx512<1, 2>, kernel_avx512<1, 3>,
                                     kernel_avx512<1, 4>, kernel_avx512<1, 5>, kernel_avx512<1, 6>, kernel_avx512<1, 7>,
                                     kernel_avx512<1, 8>},
                                    8,
                                    {nullptr, kernel_avx512<6, 1>, kernel_avx512<6, 2>, kernel_avx512<6, 3>},
                                    3,
                                    6,
                                    // few rows: MR·NV accumulators + NV scales + MR broadcasts + 1 weight ≤ 32
                                    {nullptr, nullptr, kernel_avx512<2, 8>, kernel_avx512<3, 6>, kernel_avx512<4, 4>,
                                     kernel_avx512<5, 4>, kernel_avx512<6, 3>, kernel_avx512<7, 2>, kernel_avx512<8, 2>},
                                    {0, 0, 8, 6, 4, 4, 3, 2, 2},
                                    {nullptr, nullptr, kernel_avx512<2, 1>, kernel_avx512<3, 1>, kernel_avx512<4, 1>,
                                     kernel_avx512<5, 1>, kernel_avx512<6, 1>, kernel_avx512<7, 1>, kernel_avx512<8, 1>}};
  static const Kernels<Args> avx2{{nullptr, kernel_avx2<1, 1>, kernel_avx2<1, 2>, kernel_avx2<1, 3>},
                                  3,
                                  {nullptr, kernel_avx2<4, 1>},
                                  1,
                                  4};
#endif
  static const Kernels<Args> generic{
      {nullptr, kernel_generic<1, 1>, kernel_generic<1, 2>}, 2, {nullptr, kernel_generic<4, 1>}, 1, 4};
#if defined(__x86_64__) || defined(__i386__)
  switch (cpu_isa()) {
    case CpuIsa::avx512: return avx512;
    case CpuIsa::avx2: return avx2;
    case CpuIsa::generic: break;
  }
#endif
  return generic;
}

int64_t panel_bytes_of(int64_t in) { return q8_blocks(in) * kBlockBytes; }

}  // namespace

// Called by linear() (cpu_linear.cpp) for a q8 W.
void linear_q8(const OpCall& c, const CpuContext& ctx) {
  const TensorRef &xt = c.in(LinearIn::x), &wt = c.in(LinearIn::W);
  const int64_t T = xt.rows(), K = xt.cols(), N = wt.shape[0];
  if (T == 0 || N == 0) return;
  const unsigned char* panels = wt.as<const unsigned char>();
  if (wt.layout != kCpuLinearPanels) {  // a dense W (op tests, unprepared weights): pack into scratch
    unsigned char* own = scratch<unsigned char>(0, cpu_linear_q8_panel_bytes(N, K));
    cpu_pack_linear_q8_panels(wt, own);
    panels = own;
  }
  const Args a{xt.as<const float>(), panels, c.in_as<const float>(LinearIn::b), c.out_as<float>(OutY::y),
               T, K, N, (N + P - 1) / P, panel_bytes_of(K)};
  run(a, c.params.activation, ctx, kernels());
}

}  // namespace longvq::cpu

namespace longvq {

size_t cpu_linear_q8_panel_bytes(int64_t out, int64_t in) {
  return static_cast<size_t>((out + cpu::P - 1) / cpu::P * cpu::panel_bytes_of(in));
}

void cpu_pack_linear_q8_panels(const TensorRef& W, void* dst) {
  using cpu::P, cpu::KB, cpu::kBlockBytes, cpu::kScaleBytes;
  const int64_t out = W.shape.at(0), in = W.shape.at(1), nb = q8_blocks(in);
  const int8_t* q = W.q8_values();
  const float* s = W.q8_scales();
  auto* base = static_cast<unsigned char*>(dst);
  std::memset(base, 0, cpu_linear_q8_panel_bytes(out, in));
  const int64_t np = (out + P - 1) / P, panel = cpu::panel_bytes_of(in);
  for (int64_t p = 0; p < np; ++p)
    for (int64_t j = 0; j < P && p * P + j < out; ++j) {
      const int64_t o = p * P + j;
      for (int64_t b = 0; b < nb; ++b) {
        unsigned char* blk = base + p * panel + b * kBlockBytes;
        std::memcpy(blk + j * 4, s + o * nb + b, 4);
        for (int64_t i = 0; i < KB && b * KB + i < in; ++i)
          std::memcpy(blk + kScaleBytes + i * P + j, q + o * in + b * KB + i, 1);
      }
    }
}

}  // namespace longvq
