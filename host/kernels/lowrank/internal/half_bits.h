// fp16 <-> float for the lowrank kernels' scales and fp16 buffers, through the compiler's _Float16
// (GCC >= 12 on x86-64 / aarch64; F16C instructions where the caller's target has them). A
// compiler without _Float16 on this target (clang < 15 on x86-64, which builds the fuzzers) gets
// host/kernels/half.h's portable conversions: the same bits, not vectorized.
// Private to host/kernels/lowrank: never included by CUDA sources.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__clang__) && __clang_major__ < 15
#define KVT_LOWRANK_HAVE_FLOAT16 0
#include "host/kernels/half.h"
#else
#define KVT_LOWRANK_HAVE_FLOAT16 1
#endif

namespace kvt::kernels::lowrank::internal {

#if !KVT_LOWRANK_HAVE_FLOAT16
inline float HalfBitsToFloat(uint16_t bits) { return HalfToFloat(Half{bits}); }
inline uint16_t FloatToHalfBits(float f) { return FloatToHalf(f).bits; }
#else
inline float HalfBitsToFloat(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

inline uint16_t FloatToHalfBits(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
#endif

}  // namespace kvt::kernels::lowrank::internal
