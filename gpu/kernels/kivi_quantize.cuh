// KIVI quantization and its inverse on the GPU: CUDA twin of host/kernels/kivi_quantize.h (same
// layouts and rounding, kivi_layout.h), so codes, scales and zeros match the CPU bit for bit
// except where a value sits within float rounding of a code boundary.
//
// Pointers are device (or device-mapped) memory; work is enqueued on `stream` and not waited for;
// nothing is allocated. Errors: INVALID_ARGUMENT for bad layouts/sizes, a CUDA Status for launch
// failures.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::gpu {

using kernels::Half;
using kernels::KiviLayout;

Status KiviQuantizeKeysCuda(const KiviLayout& layout, const Half* keys, int64_t token_stride,
                            int64_t groups, uint8_t* codes, Half* scale, Half* zero,
                            cudaStream_t stream);
Status KiviQuantizeValuesCuda(const KiviLayout& layout, const Half* values, int64_t token_stride,
                              int64_t tokens, uint8_t* codes, Half* scale, Half* zero,
                              cudaStream_t stream);
Status KiviDequantizeKeysCuda(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                              const Half* zero, int64_t groups, float* keys, cudaStream_t stream);
Status KiviDequantizeValuesCuda(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                                const Half* zero, int64_t tokens, float* values,
                                cudaStream_t stream);

}  // namespace kvt::gpu
