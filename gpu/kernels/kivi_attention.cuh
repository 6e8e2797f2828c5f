// Decode attention over a KIVI-quantized cache plus residual windows on the GPU: CUDA twin of
// host/kernels/kivi_attention.h (same view, same function), split-K over chunks of tokens
// (internal/split_attention.cuh). Packed key and value codes are unpacked and dequantized in
// registers; no dequantized K or V is ever written. Query groups of up to 16 heads per KV head.
//
// View pointers are device memory; work is enqueued on `stream`; nothing is allocated:
// `workspace` must hold KiviAttentionWorkspaceBytesCuda(layout, tokens) bytes of device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/kivi_attention.h"

namespace kvt::gpu {

size_t KiviAttentionWorkspaceBytesCuda(const kernels::KiviLayout& layout, int64_t tokens);

Status KiviDecodeAttentionCuda(const kernels::KiviLayout& layout, const kernels::KiviCacheView& cache,
                               const float* query, float* out, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu
