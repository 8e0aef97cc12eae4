// IEEE half precision by hand, for the tests that write int8 models' f16 scales: no compiler half
// type is everywhere this suite is built (clang 14 has no _Float16 on x86-64, GCC 12 none in C++
// on aarch64). Round to nearest, ties to even, as numpy's and torch's float16 conversions.
#pragma once

#include <cmath>
#include <cstdint>

namespace longvq_test {

inline uint16_t f32_to_f16_bits(float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const float a = std::fabs(x);
  if (std::isnan(a)) return sign | 0x7e00;
  if (a == 0) return sign;
  int e = 0;
  std::frexp(a, &e);                            // a = m · 2^e, m in [0.5, 1)
  const int quantum = std::max(e - 11, -24);     // 11 significant bits; subnormals step by 2^-24
  const double v = std::ldexp(std::nearbyint(std::ldexp(static_cast<double>(a), -quantum)), quantum);
  if (v > 65504.0) return sign | 0x7c00;         // past the largest half: infinity
  if (v < 0x1p-14) return sign | static_cast<uint16_t>(std::ldexp(v, 24));  // subnormal (or 2^-14 exactly)
  int E = 0;
  const double m = std::frexp(v, &E);            // v = m · 2^E: exponent E − 1, 10 fraction bits
  return sign | static_cast<uint16_t>((E - 1 + 15) << 10) | static_cast<uint16_t>((m * 2 - 1) * 1024);
}

inline float f16_bits_to_f32(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  const float s = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return s * std::ldexp(static_cast<float>(m), -24);
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * std::ldexp(static_cast<float>(m + 1024), e - 25);
}

// x rounded to the nearest half, as an f32 (exact).
inline float round_to_f16(float x) { return f16_bits_to_f32(f32_to_f16_bits(x)); }

}  // namespace longvq_test
