// SnapKV prefix-token scores on the GPU: CUDA twin of host/kernels/snapkv_scores.h.
// Device pointers; enqueued on `stream`; nothing allocated: `workspace` holds
// SnapKvWorkspaceBytesCuda(shape, window, tokens) bytes of device memory (one KV head's logits at
// a time: about group * window * tokens floats).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

size_t SnapKvWorkspaceBytesCuda(const kernels::AttentionShape& shape, int window, int64_t tokens);

Status SnapKvScoresCuda(const kernels::AttentionShape& shape, const float* obs, int window,
                        const kernels::Half* keys, int64_t tokens, int64_t token_stride, int pool,
                        float* scores, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu
