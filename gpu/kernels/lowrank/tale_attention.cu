#include "gpu/kernels/lowrank/tale_attention.cuh"

#include <cuda_fp16.h>

#include <cmath>

#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 256;  // tokens per block
constexpr int kMaxGroup = 8;

__device__ __forceinline__ float HalfBits(const uint8_t* p) {
  __half_raw r;
  r.x = static_cast<unsigned short>(p[0] | (p[1] << 8));
  return __half2float(__half(r));
}

// Value of coefficient i (< level rank) of a record: its segment's code, centered and scaled.
__device__ __forceinline__ float DecodeOne(const klr::TaleLevelLayout& lv, const uint8_t* rec, int i) {
  int s = 0;
  while (s + 1 < lv.num_segments && i >= lv.segments[s].end) ++s;
  const klr::TaleSegment& seg = lv.segments[s];
  const int k = i - seg.begin;
  const uint8_t* codes = rec + seg.code_offset;
  if (seg.bits == 32) {
    float f;
    memcpy(&f, codes + 4 * k, 4);
    return f;
  }
  if (seg.bits == 16) return HalfBits(codes + 2 * k);
  const float scale = HalfBits(rec + seg.scale_offset);
  const int bit = k * seg.bits;
  const int q = (codes[bit >> 3] >> (bit & 7)) & ((1 << seg.bits) - 1);
  return (static_cast<float>(q) - 0.5f * static_cast<float>((1 << seg.bits) - 1)) * scale;
}

struct Locator {
  int64_t count[klr::kTaleLevels];
  int64_t compressed;
};

__device__ __forceinline__ Locator Locate(const klr::TaleAttentionArgs& a, int h) {
  Locator loc;
  loc.compressed = 0;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    int64_t c = a.levels[l].tokens != nullptr ? a.levels[l].tokens[h] : 0;
    c = c < 0 ? 0 : (c > a.levels[l].capacity ? a.levels[l].capacity : c);
    if (loc.compressed + c > a.max_head_tokens) c = a.max_head_tokens - loc.compressed;
    loc.count[l] = c;
    loc.compressed += c;
  }
  return loc;
}

// Partial results per (head, chunk): m[group], l[group], coef[group][d], exact[group][d].
__global__ void __launch_bounds__(kThreads) TalePartialKernel(klr::TaleAttentionArgs a, float scale,
                                                              int chunks, float* partial,
                                                              float* window_scores) {
  const int h = blockIdx.y, chunk = blockIdx.x;
  const int d = a.head_dim, group = a.num_q_heads / a.num_kv_heads;
  extern __shared__ float smem[];
  float* qp = smem;                       // [group][d] projected, scaled
  float* qs = qp + group * d;             // [group][d] raw, scaled (window)
  float* sc = qs + group * d;             // [group][kChunk]
  __shared__ float red_m[kMaxGroup], red_l[kMaxGroup];
  __shared__ float warp_buf[kThreads / 32][kMaxGroup];

  const float* bk = a.key_basis + static_cast<size_t>(h) * d * d;
  const float* q0 = a.query + static_cast<size_t>(h) * group * d;
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) {
    const int g = p / d, j = p % d;
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += bk[i * d + j] * q0[g * d + i];
    qp[p] = s * scale;
    qs[p] = q0[p] * scale;
  }
  __syncthreads();

  const Locator loc = Locate(a, h);
  const int64_t total = loc.compressed + a.window_tokens;
  const int64_t begin = static_cast<int64_t>(chunk) * kChunk;
  const int n = static_cast<int>(begin >= total ? 0 : (total - begin < kChunk ? total - begin : kChunk));

  // Scores: one thread per token.
  float local_max[kMaxGroup];
  for (int g = 0; g < kMaxGroup; ++g) local_max[g] = -INFINITY;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    int64_t v = begin + t;
    float acc[kMaxGroup];
    for (int g = 0; g < kMaxGroup; ++g) acc[g] = 0.0f;
    if (v < loc.compressed) {
      int l = 0;
      while (v >= loc.count[l]) v -= loc.count[l++];
      const klr::TaleLevelLayout& lv = a.key_layout.levels[l];
      const uint8_t* rec = a.levels[l].key_records + (static_cast<size_t>(h) * a.levels[l].capacity + v) * lv.record_bytes;
      for (int i = 0; i < lv.rank; ++i) {
        const float x = DecodeOne(lv, rec, i);
        for (int g = 0; g < group; ++g) acc[g] += qp[g * d + i] * x;
      }
    } else {
      const int w = static_cast<int>(v - loc.compressed);
      const float* k = a.window_keys + (static_cast<size_t>(w) * a.num_kv_heads + h) * d;
      for (int i = 0; i < d; ++i) {
        const float x = k[i];
        for (int g = 0; g < group; ++g) acc[g] += qs[g * d + i] * x;
      }
      if (window_scores != nullptr) {
        for (int g = 0; g < group; ++g) window_scores[(static_cast<size_t>(h) * group + g) * a.window_tokens + w] = acc[g];
      }
    }
    for (int g = 0; g < group; ++g) {
      sc[g * kChunk + t] = acc[g];
      local_max[g] = fmaxf(local_max[g], acc[g]);
    }
  }
  // Block max per query.
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
  for (int g = 0; g < group; ++g) {
    float s = local_sum[g];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    __syncthreads();
    if (lane == 0) warp_buf[warp][g] = s;
  }
  __syncthreads();
  if (threadIdx.x < group) {
    float s = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) s += warp_buf[w][threadIdx.x];
    red_l[threadIdx.x] = s;
  }
  __syncthreads();

  // Values: one thread per (query, coefficient), walking the chunk's tokens.
  float* out = partial + (static_cast<size_t>(h) * chunks + chunk) * (2 * group + 2 * group * d);
  if (threadIdx.x < group) {
    out[threadIdx.x] = n > 0 ? red_m[threadIdx.x] : -INFINITY;
    out[group + threadIdx.x] = n > 0 ? red_l[threadIdx.x] : 0.0f;
  }
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) {
    const int g = p / d, i = p % d;
    float coef = 0.0f, exact = 0.0f;
    int64_t v = begin;
    int l = 0;
    int64_t slot = v;
    while (l < klr::kTaleLevels && slot >= loc.count[l]) slot -= loc.count[l++];
    for (int t = 0; t < n; ++t) {
      const float w = sc[g * kChunk + t];
      if (l < klr::kTaleLevels) {
        const klr::TaleLevelLayout& lv = a.value_layout.levels[l];
        if (i < lv.rank) {
          const uint8_t* rec = a.levels[l].value_records +
                               (static_cast<size_t>(h) * a.levels[l].capacity + slot) * lv.record_bytes;
          coef += w * DecodeOne(lv, rec, i);
        }
        if (++slot >= loc.count[l]) {
          slot = 0;
          ++l;
          while (l < klr::kTaleLevels && loc.count[l] == 0) ++l;
        }
      } else {
        const int64_t wi = begin + t - loc.compressed;
        exact += w * a.window_values[(static_cast<size_t>(wi) * a.num_kv_heads + h) * d + i];
      }
    }
    out[2 * group + p] = coef;
    out[2 * group + group * d + p] = exact;
  }
}

// One block per query head: merge the chunks, project the coefficients back once.
__global__ void TaleCombineKernel(klr::TaleAttentionArgs a, int chunks, const float* partial,
                                  const float* window_scores) {
  const int qh = blockIdx.x;
  const int group = a.num_q_heads / a.num_kv_heads;
  const int h = qh / group, g = qh % group, d = a.head_dim;
  extern __shared__ float coef[];  // [d]
  __shared__ float s_m, s_l;
  const size_t stride = 2 * group + 2 * static_cast<size_t>(group) * d;
  const float* base = partial + static_cast<size_t>(h) * chunks * stride;
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int c = 0; c < chunks; ++c) m = fmaxf(m, base[c * stride + g]);
    float l = 0.0f;
    for (int c = 0; c < chunks; ++c) {
      const float mc = base[c * stride + g];
      if (mc > -INFINITY) l += base[c * stride + group + g] * __expf(mc - m);
    }
    s_m = m;
    s_l = l;
  }
  __syncthreads();
  float exact = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float cf = 0.0f, ex = 0.0f;
    for (int c = 0; c < chunks; ++c) {
      const float mc = base[c * stride + g];
      if (!(mc > -INFINITY)) continue;
      const float f = __expf(mc - s_m);
      cf += f * base[c * stride + 2 * group + g * d + i];
      ex += f * base[c * stride + 2 * group + group * d + g * d + i];
    }
    coef[i] = cf;
    if (i == threadIdx.x) exact = ex;
  }
  __syncthreads();
  const float* bv = a.value_basis + static_cast<size_t>(h) * d * d;
  const float inv = s_l > 0.0f ? 1.0f / s_l : 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float x = 0.0f;
    for (int j = 0; j < d; ++j) x += bv[i * d + j] * coef[j];
    a.out[static_cast<size_t>(qh) * d + i] = (x + exact) * inv;
  }
  if (a.window_attention != nullptr && window_scores != nullptr) {
    const float* ws = window_scores + (static_cast<size_t>(h) * group + g) * a.window_tokens;
    for (int w = threadIdx.x; w < a.window_tokens; w += blockDim.x) {
      atomicAdd(a.window_attention + static_cast<size_t>(h) * a.window_tokens + w,
                __expf(ws[w] - s_m) * inv / static_cast<float>(group));
    }
  }
}

int Chunks(const klr::TaleAttentionArgs& a) {
  const int64_t total = a.max_head_tokens + a.window_tokens;
  return static_cast<int>(total <= 0 ? 1 : (total + kChunk - 1) / kChunk);
}

size_t PartialFloats(const klr::TaleAttentionArgs& a) {
  const size_t group = static_cast<size_t>(a.num_q_heads / (a.num_kv_heads > 0 ? a.num_kv_heads : 1));
  return static_cast<size_t>(a.num_kv_heads) * Chunks(a) * (2 * group + 2 * group * a.head_dim);
}

}  // namespace

size_t TaleAttentionWorkspaceBytesCuda(const klr::TaleAttentionArgs& a) {
  if (a.num_kv_heads < 1) return 0;
  const size_t window = static_cast<size_t>(a.num_q_heads) * (a.window_tokens > 0 ? a.window_tokens : 0);
  return (PartialFloats(a) + window) * sizeof(float) + 256;
}

Status TaleAttentionCuda(const klr::TaleAttentionArgs& a, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  if (a.num_kv_heads < 1 || a.num_q_heads % a.num_kv_heads != 0 || a.num_q_heads < a.num_kv_heads) {
    return InvalidArgument("TaleAttentionCuda: q_heads must be a positive multiple of kv_heads");
  }
  if (a.num_q_heads / a.num_kv_heads > kMaxGroup) return Unsupported("TaleAttentionCuda: group > 8");
  if (a.head_dim < 1 || a.head_dim > klr::kTaleMaxHeadDim || a.key_layout.head_dim != a.head_dim ||
      a.value_layout.head_dim != a.head_dim) {
    return InvalidArgument("TaleAttentionCuda: head_dim does not match the layouts");
  }
  if (a.key_basis == nullptr || a.value_basis == nullptr || a.query == nullptr || a.out == nullptr ||
      a.window_tokens < 0 || a.max_head_tokens < 0 ||
      (a.window_tokens > 0 && (a.window_keys == nullptr || a.window_values == nullptr))) {
    return InvalidArgument("TaleAttentionCuda: null pointer or negative size");
  }
  if (workspace == nullptr || workspace_bytes < TaleAttentionWorkspaceBytesCuda(a)) {
    return InvalidArgument("TaleAttentionCuda: workspace smaller than TaleAttentionWorkspaceBytesCuda");
  }
  const int chunks = Chunks(a);
  const int group = a.num_q_heads / a.num_kv_heads;
  float* partial = static_cast<float*>(workspace);
  float* window_scores = a.window_tokens > 0 ? partial + PartialFloats(a) : nullptr;
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  if (a.window_attention != nullptr && a.window_tokens > 0) {
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        a.window_attention, 0, sizeof(float) * a.num_kv_heads * a.window_tokens, stream));
  }
  const size_t smem1 = sizeof(float) * (2 * group * a.head_dim + group * kChunk);
  if (smem1 > 48 * 1024) {
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        TalePartialKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem1)));
  }
  TalePartialKernel<<<dim3(chunks, a.num_kv_heads), kThreads, smem1, stream>>>(a, scale, chunks, partial,
                                                                             window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const int threads = a.head_dim < 32 ? 32 : (a.head_dim > 256 ? 256 : a.head_dim);
  TaleCombineKernel<<<a.num_q_heads, threads, sizeof(float) * a.head_dim, stream>>>(a, chunks, partial,
                                                                                  window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
