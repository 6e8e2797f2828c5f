// Decode attention over fp16 K/V segments on the GPU: CUDA twin of host/kernels/decode_attention.h
// (same segments, same function; fp32 softmax). Supports up to 4 segments and query groups of up
// to 16 heads per KV head (UNSUPPORTED beyond).
//
// Pointers are device or device-mapped memory (a segment may live in pinned host memory); work is
// enqueued on `stream`; nothing is allocated: `workspace` must hold
// DecodeAttentionWorkspaceBytesCuda(shape, total tokens) bytes of device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "host/kernels/decode_attention.h"

namespace kvt::gpu {

size_t DecodeAttentionWorkspaceBytesCuda(const kernels::AttentionShape& shape, int64_t total_tokens);

//   query [q_heads][head_dim] (device), out [q_heads][head_dim] (device)
Status DecodeAttentionCuda(const kernels::AttentionShape& shape,
                           std::span<const kernels::KvSegment<kernels::Half>> segments,
                           const float* query, float* out, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream);

}  // namespace kvt::gpu
