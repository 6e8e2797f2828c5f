// Approximate token scores from the resident low-bit key sketch: CUDA twin of
// host/kernels/sketch_scores.h (same arguments, device pointers; enqueued on `stream`).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "host/kernels/sketch_scores.h"

namespace kvt::gpu {

Status SketchScoresCuda(const kernels::KiviLayout& layout, const uint8_t* codes, const kernels::Half* scale,
                        const kernels::Half* zero, int64_t groups, const float* qhat, const int32_t* selected,
                        int channels, int64_t begin, int64_t n, float* scores, int64_t score_stride,
                        cudaStream_t stream);

}  // namespace kvt::gpu
