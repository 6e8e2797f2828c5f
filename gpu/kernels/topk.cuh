// Top-k per row on the GPU: CUDA twin of host/kernels/topk.h — the same indices in the same
// (ascending) order, ties toward the smaller index. One block per row: exact radix select of the
// threshold, then an ordered compaction. Device pointers; enqueued on `stream`; no workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"

namespace kvt::gpu {

Status TopKCuda(const float* values, int64_t rows, int64_t n, int64_t row_stride, int64_t k,
                int32_t* indices, cudaStream_t stream);

}  // namespace kvt::gpu
