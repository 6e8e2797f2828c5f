// Bulk fp32 <-> fp16 conversion (CPU, F16C, round to nearest even — the same bits as Half's scalar
// conversions and CUDA's __float2half_rn). Pure; n may be 0.
#pragma once

#include <cstdint>

#include "host/kernels/half.h"

namespace kvt::kernels {

void ConvertToHalf(const float* src, Half* dst, int64_t n);
void ConvertToFloat(const Half* src, float* dst, int64_t n);

}  // namespace kvt::kernels
