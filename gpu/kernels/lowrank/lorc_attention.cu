#include "gpu/kernels/lowrank/lorc_attention.cuh"

#include <cmath>
#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"
#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 128;  // tokens per partial block
constexpr int kMaxGroup = 8;
constexpr int kMaxHeadDim = 256;

using kvt::gpu::internal::CeilDiv;
using kvt::gpu::internal::Ld;
using kvt::gpu::internal::WarpMax;
using kvt::gpu::internal::WarpSum;

int Group(const klr::LorcAttentionArgs& a) { return a.num_q_heads / a.num_kv_heads; }

int64_t Chunks(const klr::LorcAttentionArgs& a) { return CeilDiv(a.tokens, kChunk); }

// Partial record per (KV head, chunk), Stride() floats: m [group], l [group], acc
// [group][value_rank].
size_t Stride(const klr::LorcAttentionArgs& a) {
  const size_t group = static_cast<size_t>(Group(a));
  return 2 * group + group * static_cast<size_t>(a.value_rank);
}

// Grid (chunks, kv_heads), kThreads threads.
__global__ void __launch_bounds__(kThreads)
    LorcPartialKernel(klr::LorcAttentionArgs a, float scale, float* partial) {
  const int h = blockIdx.y;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int n = static_cast<int>(min(static_cast<int64_t>(kChunk), a.tokens - first));
  const int d = a.head_dim, rk = a.key_rank, rv = a.value_rank,
            group = a.num_q_heads / a.num_kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __shared__ float q[kMaxGroup][kMaxHeadDim];  // scaled queries of the group
  __shared__ float lat[kWarps][kMaxHeadDim];   // one token's key latents per warp
  __shared__ float p[kChunk][kMaxGroup];       // scores, then softmax numerators
  __shared__ float red_m[kMaxGroup], red_l[kMaxGroup];
  for (int e = threadIdx.x; e < group * d; e += blockDim.x) {
    q[e / d][e % d] = a.query[static_cast<size_t>(h) * group * d + e] * scale;
  }
  __syncthreads();

  // Scores: warp per token, lanes over RoPE pairs (2i, 2i+1).
  const float* uk = a.key_up + static_cast<size_t>(h) * d * rk;
  for (int t = warp; t < n; t += kWarps) {
    const int64_t tok = first + t;
    const Half* ck = a.key_latents + (static_cast<size_t>(h) * a.capacity + tok) * rk;
    for (int j = lane; j < rk; j += 32) lat[warp][j] = Ld(ck + j);
    __syncwarp();
    const float* cs = a.rope + static_cast<size_t>(tok) * d;
    float acc[kMaxGroup];
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) acc[g] = 0.0f;
    for (int i = lane; i < d / 2; i += 32) {
      float x0 = 0.0f, x1 = 0.0f;
      const float* r0 = uk + static_cast<size_t>(2 * i) * rk;
      const float* r1 = r0 + rk;
      for (int j = 0; j < rk; ++j) {
        x0 = fmaf(r0[j], lat[warp][j], x0);
        x1 = fmaf(r1[j], lat[warp][j], x1);
      }
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const float k0 = x0 * c - x1 * s, k1 = x0 * s + x1 * c;
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) acc[g] = fmaf(q[g][2 * i], k0, fmaf(q[g][2 * i + 1], k1, acc[g]));
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) {
        const float s = WarpSum(acc[g]);
        if (lane == 0) p[t][g] = s;
      }
    }
    __syncwarp();  // lat[warp] is rewritten by the next token
  }
  __syncthreads();

  // Chunk softmax, warp g takes query g.
  for (int g = warp; g < group; g += kWarps) {
    float m = -INFINITY;
    for (int t = lane; t < n; t += 32) m = fmaxf(m, p[t][g]);
    m = WarpMax(m);
    float sum = 0.0f;
    for (int t = lane; t < n; t += 32) {
      const float e = expf(p[t][g] - m);
      p[t][g] = e;
      sum += e;
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      red_m[g] = m;
      red_l[g] = sum;
    }
  }
  __syncthreads();

  float* out = partial + (static_cast<size_t>(h) * gridDim.x + blockIdx.x) *
                             (2 * group + static_cast<size_t>(group) * rv);
  if (threadIdx.x < group) {
    out[threadIdx.x] = red_m[threadIdx.x];
    out[group + threadIdx.x] = red_l[threadIdx.x];
  }
  // p-weighted value latents: thread per (query, coefficient); consecutive threads read
  // consecutive coefficients of a token.
  const Half* cv0 = a.value_latents + (static_cast<size_t>(h) * a.capacity + first) * rv;
  for (int e = threadIdx.x; e < group * rv; e += blockDim.x) {
    const int g = e / rv, j = e % rv;
    float acc = 0.0f;
    for (int t = 0; t < n; ++t) acc = fmaf(p[t][g], Ld(cv0 + static_cast<size_t>(t) * rv + j), acc);
    out[2 * group + e] = acc;
  }
}

// Grid (q_heads), kThreads threads: merges the chunks of one query, then out = Uv acc / l.
__global__ void __launch_bounds__(kThreads)
    LorcCombineKernel(klr::LorcAttentionArgs a, int chunks, const float* partial) {
  const int qh = blockIdx.x, group = a.num_q_heads / a.num_kv_heads;
  const int h = qh / group, g = qh % group, d = a.head_dim, rv = a.value_rank;
  const size_t stride = 2 * group + static_cast<size_t>(group) * rv;
  const float* base = partial + static_cast<size_t>(h) * chunks * stride;
  __shared__ float merged[kMaxHeadDim];
  __shared__ float scratch[kWarps];
  __shared__ float total_m, total_l;
  // Maximum over the chunks.
  float m = -INFINITY;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) m = fmaxf(m, base[c * stride + g]);
  m = WarpMax(m);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float mt = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mt = fmaxf(mt, scratch[w]);
    float lt = 0.0f;
    for (int c = 0; c < chunks; ++c)
      lt = fmaf(base[c * stride + group + g], expf(base[c * stride + g] - mt), lt);
    total_m = mt;
    total_l = lt;
  }
  __syncthreads();
  const float mt = total_m, lt = total_l;
  for (int j = threadIdx.x; j < rv; j += blockDim.x) {
    float x = 0.0f;
    for (int c = 0; c < chunks; ++c)
      x = fmaf(base[c * stride + 2 * group + g * rv + j], expf(base[c * stride + g] - mt), x);
    merged[j] = x;
  }
  __syncthreads();
  const float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
  const float* uv = a.value_up + static_cast<size_t>(h) * d * rv;
  // Warp per output row, lanes along the row (coalesced reads of value_up).
  for (int i = warp; i < d; i += kWarps) {
    float x = 0.0f;
    for (int j = lane; j < rv; j += 32) x = fmaf(uv[static_cast<size_t>(i) * rv + j], merged[j], x);
    x = WarpSum(x);
    if (lane == 0) a.out[static_cast<size_t>(qh) * d + i] = x * inv;
  }
}

Status Validate(const klr::LorcAttentionArgs& a) {
  if (a.num_kv_heads < 1 || a.num_q_heads < a.num_kv_heads || a.num_q_heads % a.num_kv_heads != 0 ||
      Group(a) > 64) {
    return InvalidArgument("LorcAttentionCuda: q_heads must be a multiple (<= 64x) of kv_heads");
  }
  if (a.head_dim < 2 || a.head_dim % 2 != 0 || a.key_rank < 1 || a.key_rank > a.head_dim ||
      a.value_rank < 1 || a.value_rank > a.head_dim) {
    return InvalidArgument("LorcAttentionCuda: need an even head_dim and ranks in [1, head_dim]");
  }
  if (a.tokens < 0 || a.tokens > a.capacity)
    return InvalidArgument("LorcAttentionCuda: tokens > capacity");
  if (a.key_up == nullptr || a.value_up == nullptr || a.query == nullptr || a.out == nullptr ||
      (a.tokens > 0 &&
       (a.key_latents == nullptr || a.value_latents == nullptr || a.rope == nullptr))) {
    return InvalidArgument("LorcAttentionCuda: null pointer");
  }
  if (Group(a) > kMaxGroup) return Unsupported("LorcAttentionCuda: group (q_heads / kv_heads) > 8");
  if (a.head_dim > kMaxHeadDim) return Unsupported("LorcAttentionCuda: head_dim > 256");
  if (Chunks(a) > INT32_MAX / 2 || a.num_kv_heads > 65535) {
    return Unsupported("LorcAttentionCuda: grid too large (tokens or kv_heads)");
  }
  return Status::Ok();
}

}  // namespace

size_t LorcAttentionWorkspaceBytesCuda(const klr::LorcAttentionArgs& a) {
  if (a.num_kv_heads < 1 || a.num_q_heads < a.num_kv_heads || a.value_rank < 1 || a.tokens < 0)
    return 0;
  return static_cast<size_t>(a.num_kv_heads) * static_cast<size_t>(Chunks(a)) * Stride(a) *
         sizeof(float);
}

Status LorcAttentionCuda(const klr::LorcAttentionArgs& a, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(Validate(a));
  const size_t need = LorcAttentionWorkspaceBytesCuda(a);
  if (need > 0 && (workspace == nullptr || workspace_bytes < need)) {
    return InvalidArgument(
        "LorcAttentionCuda: workspace smaller than LorcAttentionWorkspaceBytesCuda");
  }
  if (a.tokens == 0) {  // the CPU twin writes zeros: no token, no weight
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        a.out, 0, sizeof(float) * static_cast<size_t>(a.num_q_heads) * a.head_dim, stream));
    return Status::Ok();
  }
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  const int chunks = static_cast<int>(Chunks(a));
  float* partial = static_cast<float*>(workspace);
  LorcPartialKernel<<<dim3(chunks, a.num_kv_heads), kThreads, 0, stream>>>(a, scale, partial);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  LorcCombineKernel<<<a.num_q_heads, kThreads, 0, stream>>>(a, chunks, partial);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
