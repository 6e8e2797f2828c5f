#include "gpu/kernels/lowrank/observed_attention_scores.cuh"

#include <cmath>
#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"
#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;

using kvt::gpu::internal::CeilDiv;
using kvt::gpu::internal::WarpMax;
using kvt::gpu::internal::WarpSum;

// Lane's share of scale * q . k, the vector's elements i = lane + 32 e held by the lane.
__device__ __forceinline__ void LoadLane(const float* v, int d, int lane, float (&x)[kPerLane]) {
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int i = lane + 32 * e;
    x[e] = i < d ? v[i] : 0.0f;
  }
}

// Grid (window, q_heads): row statistics stats[w][qh] = (max, sum of exp(logit - max)).
__global__ void __launch_bounds__(kThreads)
    RowStatsKernel(klr::ObservedAttentionShape s, float scale, const float* keys,
                   const float* queries, float* stats) {
  const int w = blockIdx.x, qh = blockIdx.y, group = s.num_q_heads / s.num_kv_heads, h = qh / group;
  const int d = s.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t visible = s.tokens - s.window + w + 1;
  float q[kPerLane];
  LoadLane(queries + (static_cast<size_t>(w) * s.num_q_heads + qh) * d, d, lane, q);
  float m = -INFINITY, l = 0.0f;  // uniform across the warp
  for (int64_t t = warp; t < visible; t += kWarps) {
    float k[kPerLane];
    LoadLane(keys + (static_cast<size_t>(t) * s.num_kv_heads + h) * d, d, lane, k);
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) dot = fmaf(q[e], k[e], dot);
    const float x = WarpSum(dot) * scale;
    if (x > m) {
      l = l * expf(m - x);  // 0 * exp(-inf) = 0 on the first token
      m = x;
    }
    l += expf(x - m);
  }
  __shared__ float wm[kWarps], wl[kWarps];
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float mt = -INFINITY;
    for (int i = 0; i < kWarps; ++i) mt = fmaxf(mt, wm[i]);
    float lt = 0.0f;
    for (int i = 0; i < kWarps; ++i) {
      if (wm[i] > -INFINITY) lt += wl[i] * expf(wm[i] - mt);
    }
    const size_t at = (static_cast<size_t>(w) * s.num_q_heads + qh) * 2;
    stats[at] = mt;
    stats[at + 1] = lt;
  }
}

// Grid (ceil(tokens / kWarps), kv_heads): warp per token.
__global__ void __launch_bounds__(kThreads)
    TokenScoresKernel(klr::ObservedAttentionShape s, float scale, bool max_reduce,
                      const float* keys, const float* queries, const float* stats, float* scores) {
  const int h = blockIdx.y, group = s.num_q_heads / s.num_kv_heads, d = s.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= s.tokens) return;
  float k[kPerLane];
  LoadLane(keys + (static_cast<size_t>(t) * s.num_kv_heads + h) * d, d, lane, k);
  // Query w sees t when t <= tokens - window + w.
  const int64_t first_w64 = t - (s.tokens - s.window);
  const int first_w = first_w64 > 0 ? static_cast<int>(first_w64) : 0;
  float total = 0.0f;
  for (int g = 0; g < group; ++g) {
    const int qh = h * group + g;
    float red = 0.0f;
    for (int w = first_w; w < s.window; ++w) {
      float q[kPerLane];
      LoadLane(queries + (static_cast<size_t>(w) * s.num_q_heads + qh) * d, d, lane, q);
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) dot = fmaf(q[e], k[e], dot);
      const float x = WarpSum(dot) * scale;
      const size_t at = (static_cast<size_t>(w) * s.num_q_heads + qh) * 2;
      const float p = expf(x - stats[at]) / stats[at + 1];
      red = max_reduce ? fmaxf(red, p) : red + p;
    }
    total += red / static_cast<float>(group);
  }
  if (lane == 0) scores[static_cast<size_t>(h) * s.tokens + t] = total;
}

}  // namespace

size_t ObservedAttentionScoresWorkspaceBytesCuda(const klr::ObservedAttentionShape& s) {
  if (s.window < 1 || s.num_q_heads < 1) return 0;
  return static_cast<size_t>(s.window) * static_cast<size_t>(s.num_q_heads) * 2 * sizeof(float);
}

Status ObservedAttentionScoresCuda(const klr::ObservedAttentionShape& s, const float* keys,
                                   const float* queries, klr::ObservationReduce reduce,
                                   float* scores, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
  if (s.num_kv_heads < 1 || s.num_q_heads < s.num_kv_heads || s.num_q_heads % s.num_kv_heads != 0) {
    return InvalidArgument("ObservedAttentionScoresCuda: q_heads must be a multiple of kv_heads");
  }
  if (s.head_dim < 1 || s.tokens < 1 || s.window < 1 || s.window > s.tokens) {
    return InvalidArgument(
        "ObservedAttentionScoresCuda: need head_dim >= 1 and 1 <= window <= tokens");
  }
  if (keys == nullptr || queries == nullptr || scores == nullptr) {
    return InvalidArgument("ObservedAttentionScoresCuda: null pointer");
  }
  if (workspace == nullptr || workspace_bytes < ObservedAttentionScoresWorkspaceBytesCuda(s)) {
    return InvalidArgument(
        "ObservedAttentionScoresCuda: workspace smaller than "
        "ObservedAttentionScoresWorkspaceBytesCuda");
  }
  if (s.head_dim > kMaxHeadDim) return Unsupported("ObservedAttentionScoresCuda: head_dim > 256");
  if (s.num_kv_heads > 65535 || s.window > 65535 || s.num_q_heads > 65535 ||
      CeilDiv(s.tokens, kWarps) > INT32_MAX) {
    return Unsupported("ObservedAttentionScoresCuda: grid too large");
  }
  const float scale = s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  float* stats = static_cast<float*>(workspace);
  RowStatsKernel<<<dim3(s.window, s.num_q_heads), kThreads, 0, stream>>>(s, scale, keys, queries,
                                                                         stats);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  TokenScoresKernel<<<dim3(static_cast<unsigned>(CeilDiv(s.tokens, kWarps)), s.num_kv_heads),
                      kThreads, 0, stream>>>(s, scale, reduce == klr::ObservationReduce::kMax, keys,
                                             queries, stats, scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
