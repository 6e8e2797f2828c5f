// Quest page metadata and page scores on the GPU: CUDA twin of host/kernels/quest_pages.h.
// Device pointers; enqueued on `stream`; no workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::gpu {

Status QuestPageMinMaxCuda(const kernels::AttentionShape& shape, int page_size, const kernels::Half* keys,
                           int64_t token_stride, int64_t pages, kernels::Half* page_min,
                           kernels::Half* page_max, cudaStream_t stream);

Status QuestPageScoresCuda(const kernels::AttentionShape& shape, const float* query,
                           const kernels::Half* page_min, const kernels::Half* page_max, int64_t pages,
                           float* scores, cudaStream_t stream);

}  // namespace kvt::gpu
