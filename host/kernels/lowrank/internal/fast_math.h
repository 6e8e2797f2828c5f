// Vectorizable exp for softmax weights, and the AVX2 dispatch used by the lowrank kernels.
// Private to host/kernels/lowrank.
#pragma once

#include <cstdint>
#include <cstring>

namespace kvt::kernels::lowrank::internal {

// e^x for x <= 0 (softmax arguments after subtracting the max), relative error < 2e-7 for
// x >= -87; returns ~1.6e-38 below that (exp underflow is irrelevant after normalization) and for
// a NaN (a corrupt cache's score weighs nothing; converting NaN to an integer would be undefined).
// Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n through the exponent bits.
[[gnu::always_inline]] inline float FastExp(float x) {
  x = x >= -87.0f ? x : -87.0f;
  x = x > 88.0f ? 88.0f : x;
  // Round to nearest by truncating v +- 0.5 (vectorizes as cvttps2dq; the kernels are compiled
  // with -fassociative-math, which would fold a (v + 1.5*2^23) - 1.5*2^23 trick away).
  const float v = x * 1.44269504088896341f;
  const float n = static_cast<float>(static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)));
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float p;
  std::memcpy(&p, &e, 4);
  return y * p;
}

}  // namespace kvt::kernels::lowrank::internal

// KVT_LOWRANK_AVX2: attribute compiling a function for AVX2 + FMA + F16C; the kernels keep a
// portable copy of every hot loop and pick one at run time with HasAvx2Fma().
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define KVT_LOWRANK_HAVE_AVX2_PATH 1
#define KVT_LOWRANK_AVX2 __attribute__((target("avx2,fma,f16c")))
#include "common/cpu_features.h"
namespace kvt::kernels::lowrank::internal {
inline bool HasAvx2Fma() {
  static const bool has = CpuHasAvx2FmaF16c();
  return has;
}
}  // namespace kvt::kernels::lowrank::internal
#else
#define KVT_LOWRANK_HAVE_AVX2_PATH 0
#define KVT_LOWRANK_AVX2
#endif
