#include "gpu/kernels/lowrank/dense_attention.cuh"

#include <cuda_fp16.h>

#include <cmath>

#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 256;
constexpr int kMaxGroup = 8;

__global__ void __launch_bounds__(kThreads) DensePartialKernel(klr::DenseAttentionShape s, const __half* keys,
                                                               const __half* values, int64_t tokens,
                                                               const float* query, float scale, int chunks,
                                                               float* partial) {
  const int h = blockIdx.y, chunk = blockIdx.x;
  const int d = s.head_dim, group = s.num_q_heads / s.num_kv_heads;
  extern __shared__ float smem[];
  float* qs = smem;             // [group][d]
  float* sc = qs + group * d;   // [group][kChunk]
  __shared__ float red_m[kMaxGroup], red_l[kMaxGroup];
  __shared__ float warp_buf[kThreads / 32][kMaxGroup];
  const float* q0 = query + static_cast<size_t>(h) * group * d;
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) qs[p] = q0[p] * scale;
  __syncthreads();
  const int64_t begin = static_cast<int64_t>(chunk) * kChunk;
  const int n = static_cast<int>(begin >= tokens ? 0 : (tokens - begin < kChunk ? tokens - begin : kChunk));
  const __half* kh = keys + static_cast<size_t>(h) * s.capacity * d;
  const __half* vh = values + static_cast<size_t>(h) * s.capacity * d;
  float local_max[kMaxGroup];
  for (int g = 0; g < kMaxGroup; ++g) local_max[g] = -INFINITY;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    const __half2* k2 = reinterpret_cast<const __half2*>(kh + (begin + t) * d);
    float acc[kMaxGroup];
    for (int g = 0; g < kMaxGroup; ++g) acc[g] = 0.0f;
    for (int i = 0; i < d / 2; ++i) {
      const float2 x = __half22float2(k2[i]);
      for (int g = 0; g < group; ++g) acc[g] += qs[g * d + 2 * i] * x.x + qs[g * d + 2 * i + 1] * x.y;
    }
    for (int g = 0; g < group; ++g) {
      sc[g * kChunk + t] = acc[g];
      local_max[g] = fmaxf(local_max[g], acc[g]);
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int g = 0; g < group; ++g) {
    float m = local_max[g];
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) warp_buf[warp][g] = m;
  }
  __syncthreads();
  if (threadIdx.x < group) {
    float m = -INFINITY;
    for (int w = 0; w < kThreads / 32; ++w) m = fmaxf(m, warp_buf[w][threadIdx.x]);
    red_m[threadIdx.x] = m;
  }
  __syncthreads();
  float local_sum[kMaxGroup];
  for (int g = 0; g < kMaxGroup; ++g) local_sum[g] = 0.0f;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    for (int g = 0; g < group; ++g) {
      const float p = __expf(sc[g * kChunk + t] - red_m[g]);
      sc[g * kChunk + t] = p;
      local_sum[g] += p;
    }
  }
  __syncthreads();
  for (int g = 0; g < group; ++g) {
    float v = local_sum[g];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) warp_buf[warp][g] = v;
  }
  __syncthreads();
  if (threadIdx.x < group) {
    float v = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) v += warp_buf[w][threadIdx.x];
    red_l[threadIdx.x] = v;
  }
  __syncthreads();
  float* out = partial + (static_cast<size_t>(h) * chunks + chunk) * (2 * group + group * d);
  if (threadIdx.x < group) {
    out[threadIdx.x] = n > 0 ? red_m[threadIdx.x] : -INFINITY;
    out[group + threadIdx.x] = n > 0 ? red_l[threadIdx.x] : 0.0f;
  }
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) {
    const int g = p / d, i = p % d;
    float acc = 0.0f;
    for (int t = 0; t < n; ++t) acc += sc[g * kChunk + t] * __half2float(vh[(begin + t) * d + i]);
    out[2 * group + p] = acc;
  }
}

__global__ void DenseCombineKernel(klr::DenseAttentionShape s, int chunks, const float* partial, float* out) {
  const int qh = blockIdx.x;
  const int group = s.num_q_heads / s.num_kv_heads;
  const int h = qh / group, g = qh % group, d = s.head_dim;
  const size_t stride = 2 * group + static_cast<size_t>(group) * d;
  const float* base = partial + static_cast<size_t>(h) * chunks * stride;
  float m = -INFINITY;
  for (int c = 0; c < chunks; ++c) m = fmaxf(m, base[c * stride + g]);
  float l = 0.0f;
  for (int c = 0; c < chunks; ++c) {
    if (base[c * stride + g] > -INFINITY) l += base[c * stride + group + g] * __expf(base[c * stride + g] - m);
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float acc = 0.0f;
    for (int c = 0; c < chunks; ++c) {
      const float mc = base[c * stride + g];
      if (mc > -INFINITY) acc += __expf(mc - m) * base[c * stride + 2 * group + g * d + i];
    }
    out[static_cast<size_t>(qh) * d + i] = acc * inv;
  }
}

int Chunks(int64_t tokens) { return static_cast<int>(tokens <= 0 ? 1 : (tokens + kChunk - 1) / kChunk); }

}  // namespace

size_t DenseAttentionF16WorkspaceBytesCuda(const klr::DenseAttentionShape& s, int64_t tokens) {
  if (s.num_kv_heads < 1) return 0;
  const size_t group = static_cast<size_t>(s.num_q_heads / s.num_kv_heads);
  return static_cast<size_t>(s.num_kv_heads) * Chunks(tokens) * (2 * group + group * s.head_dim) * sizeof(float);
}

Status DenseAttentionF16Cuda(const klr::DenseAttentionShape& s, const uint16_t* keys, const uint16_t* values,
                             int64_t tokens, const float* query, float* out, void* workspace,
                             size_t workspace_bytes, cudaStream_t stream) {
  if (s.num_kv_heads < 1 || s.num_q_heads < s.num_kv_heads || s.num_q_heads % s.num_kv_heads != 0) {
    return InvalidArgument("DenseAttentionF16Cuda: q_heads must be a positive multiple of kv_heads");
  }
  if (s.num_q_heads / s.num_kv_heads > kMaxGroup || s.head_dim > 256 || s.head_dim < 2 || s.head_dim % 2 != 0) {
    return Unsupported("DenseAttentionF16Cuda: needs group <= 8 and an even head_dim <= 256");
  }
  if (tokens < 0 || tokens > s.capacity || query == nullptr || out == nullptr ||
      (tokens > 0 && (keys == nullptr || values == nullptr))) {
    return InvalidArgument("DenseAttentionF16Cuda: bad tokens or null pointer");
  }
  if (workspace == nullptr || workspace_bytes < DenseAttentionF16WorkspaceBytesCuda(s, tokens)) {
    return InvalidArgument("DenseAttentionF16Cuda: workspace too small");
  }
  const int chunks = Chunks(tokens);
  const int group = s.num_q_heads / s.num_kv_heads;
  const float scale = s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const size_t smem = sizeof(float) * (group * s.head_dim + group * kChunk);
  float* partial = static_cast<float*>(workspace);
  DensePartialKernel<<<dim3(chunks, s.num_kv_heads), kThreads, smem, stream>>>(
      s, reinterpret_cast<const __half*>(keys), reinterpret_cast<const __half*>(values), tokens, query, scale,
      chunks, partial);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  DenseCombineKernel<<<s.num_q_heads, 128, 0, stream>>>(s, chunks, partial, out);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
