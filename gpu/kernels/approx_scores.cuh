// TailorKV approximate token scores on the GPU: CUDA twin of host/kernels/approx_scores.h.
// `keys` may be channel-major (token_stride 1: coalesced reads of the selected channel rows) and
// may live in pinned host memory mapped for the device. Device pointers; enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/approx_scores.h"

namespace kvt::gpu {

Status ApproxScoresCuda(int kv_heads, int head_dim, const float* qhat, const int32_t* selected,
                        int channels, const kernels::StridedKeys& keys, float* scores,
                        int64_t score_stride, cudaStream_t stream);

}  // namespace kvt::gpu
