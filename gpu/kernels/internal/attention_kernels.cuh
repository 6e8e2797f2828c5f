// The decode-attention pipeline shared by decode_attention.cu and kivi_attention.cu:
//   logits [q_heads][T]  ->  softmax in place (p = exp(s - max), stats = 1/sum)  ->
//   per-split partial sums of p * V  ->  combine and normalize.
// Keys and values are read through small functors, so the quantized path unpacks codes in
// registers and never writes a dequantized K or V.
#pragma once

#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu::internal {

constexpr int kMaxGroup = 16;     // query heads per KV head the GPU kernels support
constexpr int kMaxSegments = 4;
constexpr int kTokensPerSplit = 256;

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

struct SegKeyRow {
  DenseSegs segs;
  __device__ const Half* operator()(int64_t t, int h) const {
    const int i = Locate(segs, t);
    return segs.s[i].k + t * segs.s[i].token_stride + h * segs.s[i].head_stride;
  }
};

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

// One block per query row: p = exp(s - max) in place, inv_sum[row] = 1 / sum p.
static __global__ void SoftmaxKernel(float* logits, int64_t n, float* inv_sum) {
  __shared__ float scratch[32];
  float* s = logits + static_cast<int64_t>(blockIdx.x) * n;
  float m = -INFINITY;
  for (int64_t t = threadIdx.x; t < n; t += blockDim.x) m = fmaxf(m, s[t]);
  m = BlockMax(m, scratch);
  float sum = 0.0f;
  for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
    const float e = __expf(s[t] - m);
    s[t] = e;
    sum += e;
  }
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) inv_sum[blockIdx.x] = 1.0f / sum;
}

// Grid (splits, kv_heads); block: threads over channels. partial [splits][q_heads][d].
template <typename ValueAt>
__global__ void ValuesKernel(ValueAt value, const float* p, int64_t n, int g, int d, int q_heads,
                             float* partial) {
  const int h = blockIdx.y;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kTokensPerSplit;
  const int64_t t1 = t0 + kTokensPerSplit < n ? t0 + kTokensPerSplit : n;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc[kMaxGroup];
#pragma unroll
    for (int j = 0; j < kMaxGroup; ++j) acc[j] = 0.0f;
    for (int64_t t = t0; t < t1; ++t) {
      const float v = value(t, h, c);
#pragma unroll
      for (int j = 0; j < kMaxGroup; ++j) {
        if (j < g) acc[j] = fmaf(p[(static_cast<int64_t>(h) * g + j) * n + t], v, acc[j]);
      }
    }
#pragma unroll
    for (int j = 0; j < kMaxGroup; ++j) {
      if (j < g) partial[(static_cast<int64_t>(blockIdx.x) * q_heads + h * g + j) * d + c] = acc[j];
    }
  }
}

// out[j][c] = inv_sum[j] * sum over splits of partial.
static __global__ void CombineKernel(const float* partial, int splits, int q_heads, int d,
                              const float* inv_sum, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(q_heads) * d) return;
  float acc = 0.0f;
  for (int s = 0; s < splits; ++s) acc += partial[static_cast<int64_t>(s) * q_heads * d + i];
  out[i] = acc * inv_sum[i / d];
}

struct SegValue {
  DenseSegs segs;
  __device__ float operator()(int64_t t, int h, int c) const {
    const int i = Locate(segs, t);
    return Ld(segs.s[i].v + t * segs.s[i].token_stride + h * segs.s[i].head_stride + c);
  }
};

// Workspace carving, in floats: logits | inv_sum | partial.
struct AttentionWorkspace {
  float* logits;
  float* inv_sum;
  float* partial;
  int splits;
};
inline int64_t SplitsFor(int64_t tokens) { return CeilDiv(tokens, kTokensPerSplit); }
inline size_t AttentionWorkspaceBytes(int q_heads, int d, int64_t tokens) {
  return sizeof(float) * (static_cast<size_t>(q_heads) * tokens + q_heads +
                          static_cast<size_t>(SplitsFor(tokens)) * q_heads * d);
}
inline AttentionWorkspace CarveAttention(void* ws, int q_heads, int64_t tokens) {
  AttentionWorkspace w;
  w.logits = static_cast<float*>(ws);
  w.inv_sum = w.logits + static_cast<size_t>(q_heads) * tokens;
  w.partial = w.inv_sum + q_heads;
  w.splits = static_cast<int>(SplitsFor(tokens));
  return w;
}

}  // namespace kvt::gpu::internal
