// DenseAttentionF16Cuda — CUDA twin of host/kernels/lowrank/dense_attention.h's DenseAttentionF16:
// exact grouped-query decode attention over a head-major fp16 cache (kvt-bench's dense baseline).
// keys, values [kv_heads][capacity][head_dim] fp16 bits; query, out [q_heads][head_dim] float; all
// device memory. Split-K over chunks of tokens plus a merge kernel. Limits: group <= 8,
// head_dim <= 256, head_dim even. Enqueued on `stream`; never allocates (workspace:
// DenseAttentionF16WorkspaceBytesCuda bytes of device memory).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/lowrank/dense_attention.h"

namespace kvt::gpu::lowrank {

size_t DenseAttentionF16WorkspaceBytesCuda(const kernels::lowrank::DenseAttentionShape& shape,
                                           int64_t tokens);

Status DenseAttentionF16Cuda(const kernels::lowrank::DenseAttentionShape& shape,
                             const uint16_t* keys, const uint16_t* values, int64_t tokens,
                             const float* query, float* out, void* workspace,
                             size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu::lowrank
