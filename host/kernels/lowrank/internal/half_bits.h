// fp16 <-> float for the lowrank kernels' scales and fp16 buffers, through the compiler's _Float16
// (GCC >= 12 on x86-64 / aarch64; F16C instructions where the caller's target has them).
// Private to host/kernels/lowrank: never included by CUDA sources.
#pragma once

#include <cstdint>
#include <cstring>

namespace kvt::kernels::lowrank::internal {

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

}  // namespace kvt::kernels::lowrank::internal
