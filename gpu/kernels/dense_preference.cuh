// TailorKV dense-preference score on the GPU: CUDA twin of host/kernels/dense_preference.h.
// The score is written to *score (device memory, one float); the caller copies it back.
// Device pointers; enqueued on `stream`; nothing allocated: `workspace` holds
// DensePreferenceWorkspaceBytesCuda(shape, window, tokens) bytes of device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

size_t DensePreferenceWorkspaceBytesCuda(const kernels::AttentionShape& shape, int window, int64_t tokens);

Status DensePreferenceScoreCuda(const kernels::AttentionShape& shape, const float* obs, int window,
                                const kernels::Half* keys, int64_t tokens, int64_t token_stride,
                                float top_frac, float* score, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu
