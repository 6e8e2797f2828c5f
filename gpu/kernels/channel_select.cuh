// TailorKV critical-channel selection on the GPU: CUDA twin of host/kernels/channel_select.h
// (same running |K| max, same group-mean query, same top channels in ascending order).
// Device pointers; enqueued on `stream`; no workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

Status KeyChannelAbsMaxCuda(const kernels::AttentionShape& shape, const kernels::Half* keys,
                            int64_t tokens, int64_t token_stride, float* absmax, cudaStream_t stream);

Status TopChannelsCuda(const kernels::AttentionShape& shape, const float* query, const float* absmax,
                       int channels, float* qhat, int32_t* selected, cudaStream_t stream);

}  // namespace kvt::gpu
