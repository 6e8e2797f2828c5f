// Bulk fp32 -> fp16 conversion on the GPU: CUDA twin of host/kernels/convert.h (round to nearest
// even, __float2half_rn: the same bits as the CPU's ConvertToHalf for every float, NaNs aside
// whose payloads may differ). `src` and `dst` are device-accessible (device memory, or pinned host
// memory mapped for the device: the kernel then writes over PCIe); enqueued on `stream`, not
// waited for; nothing allocated; n may be 0.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

Status ConvertToHalfCuda(const float* src, kernels::Half* dst, int64_t n, cudaStream_t stream);

}  // namespace kvt::gpu
