// Logits of the observation-window queries of one KV head against its keys, for SnapKV and the
// TailorKV dense-preference score: rows r = j * window + i (query head j of the group, window
// query i), padded to a multiple of 16 rows with zero queries. Host-side launcher; .cu only.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

#include "common/status.h"
#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/attention_kernels.cuh"
#include "host/kernels/attention_shape.h"

namespace kvt::gpu::internal {

constexpr int kObsRowChunk = kMaxGroup;  // rows per LogitsKernel "head"

inline int ObsRowsPadded(const kernels::AttentionShape& s, int window) {
  return static_cast<int>(CeilDiv(static_cast<int64_t>(s.group()) * window, kObsRowChunk)) * kObsRowChunk;
}

struct FixedHeadKeyRow {
  const Half* base;
  int64_t token_stride;
  __device__ const Half* operator()(int64_t t, int) const { return base + t * token_stride; }
};

static __global__ void PermuteObsKernel(const float* obs, int window, int q_heads, int g, int d, int h,
                                 int rows, int rows_padded, float* qbuf) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(rows_padded) * d) return;
  const int r = static_cast<int>(i / d), c = static_cast<int>(i % d);
  if (r >= rows) {
    qbuf[i] = 0.0f;
    return;
  }
  const int j = r / window, w = r % window;
  qbuf[i] = obs[(static_cast<int64_t>(w) * q_heads + h * g + j) * d + c];
}

// qbuf [rows_padded][d] and logits [rows_padded][tokens] are workspace.
inline Status ObsLogits(const kernels::AttentionShape& s, const float* obs, int window, const Half* keys,
                        int64_t tokens, int64_t token_stride, int h, float* qbuf, float* logits,
                        cudaStream_t stream) {
  const int d = s.head_dim, rows = s.group() * window, padded = ObsRowsPadded(s, window);
  PermuteObsKernel<<<static_cast<unsigned>(CeilDiv(static_cast<int64_t>(padded) * d, 256)), 256, 0, stream>>>(
      obs, window, s.q_heads, s.group(), d, h, rows, padded, qbuf);
  KVT_RETURN_IF_ERROR(LaunchStatus("PermuteObsKernel"));
  const dim3 grid(static_cast<unsigned>(CeilDiv(tokens, 8)), padded / kObsRowChunk);
  LogitsKernel<<<grid, 256, kObsRowChunk * d * sizeof(float), stream>>>(
      FixedHeadKeyRow{keys + static_cast<int64_t>(h) * d, token_stride}, tokens, 0, tokens, qbuf,
      kObsRowChunk, d, 1.0f / std::sqrt(static_cast<float>(d)), logits);
  return LaunchStatus("LogitsKernel(obs)");
}

}  // namespace kvt::gpu::internal
