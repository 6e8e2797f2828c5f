#include "host/kernels/convert.h"

#include "host/kernels/internal/simd.h"

namespace kvt::kernels {

void ConvertToHalf(const float* src, Half* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) internal::Store8(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

void ConvertToFloat(const Half* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, internal::Load8(src + i));
  for (; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

}  // namespace kvt::kernels
