// Attention building blocks shared by the GPU kernels: fp16 K/V segments (DenseSegs, Locate) and
// LogitsKernel, the logits of a query group against a run of key rows (the observation-window
// scores of SnapKV and the dense-preference score use it; decode attention uses the split-K
// kernel in split_attention.cuh).
#pragma once

#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu::internal {

constexpr int kMaxGroup = 16;     // query heads per KV head the GPU kernels support
constexpr int kMaxSegments = 4;

struct DenseSeg {
  const Half* k;
  const Half* v;
  int64_t tokens, token_stride, head_stride;
};
struct DenseSegs {
  DenseSeg s[kMaxSegments];
  int n;
};

__device__ __forceinline__ int Locate(const DenseSegs& segs, int64_t& t) {
  int i = 0;
  while (i + 1 < segs.n && t >= segs.s[i].tokens) t -= segs.s[i++].tokens;
  return i;
}

// One warp per token; grid (ceil(tokens / warps), kv_heads); dynamic smem: g * d floats.
template <typename KeyRow>
__global__ void LogitsKernel(KeyRow rows, int64_t tokens, int64_t offset, int64_t row_len,
                             const float* query, int g, int d, float sm_scale, float* logits) {
  extern __shared__ float q_s[];
  const int h = blockIdx.y;
  for (int i = threadIdx.x; i < g * d; i += blockDim.x) q_s[i] = query[static_cast<int64_t>(h) * g * d + i];
  __syncthreads();
  const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * warps + (threadIdx.x >> 5);
  if (t >= tokens) return;
  const Half* k = rows(t, h);
  float acc[kMaxGroup];
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) acc[j] = 0.0f;
  for (int c = lane; c < d; c += 32) {
    const float kc = Ld(k + c);
#pragma unroll
    for (int j = 0; j < kMaxGroup; ++j) {
      if (j < g) acc[j] = fmaf(q_s[j * d + c], kc, acc[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) {
    if (j < g) {
      const float s = WarpSum(acc[j]);
      if (lane == 0) logits[(static_cast<int64_t>(h) * g + j) * row_len + offset + t] = s * sm_scale;
    }
  }
}

}  // namespace kvt::gpu::internal
