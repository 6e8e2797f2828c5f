// Gather of selected token rows per KV head on the GPU: CUDA twin of host/kernels/gather_rows.h.
// `src` may be pinned host memory mapped for the device (cudaHostAlloc with cudaHostAllocMapped,
// or any pinned memory under unified addressing): the kernel then reads only the selected rows over
// PCIe, which is how TailorKV fetches dominant tokens. An index outside [0, src_tokens) yields a
// zero row (the CPU twin reports INVALID_ARGUMENT instead). head_dim must be a multiple of 8.
// Enqueued on `stream`; no workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

Status GatherRowsCuda(const kernels::Half* src, int64_t src_tokens, int64_t token_stride,
                      int kv_heads, int head_dim, const int32_t* indices, int64_t k,
                      kernels::Half* dst, cudaStream_t stream);

}  // namespace kvt::gpu
