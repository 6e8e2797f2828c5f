#include "gpu/kernels/lowrank/tale_attention.cuh"

#include <cuda_fp16.h>

#include <cmath>

#include "gpu/kernels/internal/device_common.cuh"
#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 256;  // tokens per block
constexpr int kMaxGroup = 8;

using kvt::gpu::internal::WarpMax;
using kvt::gpu::internal::WarpSum;

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

// qp[qh][j] = scale * (Bk^T q)_j, once per step for every query head (not once per chunk).
// Grid q_heads, threads over j.
__global__ void TaleProjectQueryKernel(klr::TaleAttentionArgs a, float scale, float* qp) {
  const int qh = blockIdx.x, d = a.head_dim, group = a.num_q_heads / a.num_kv_heads, h = qh / group;
  const float* bk = a.key_basis + static_cast<size_t>(h) * d * d;
  const float* q = a.query + static_cast<size_t>(qh) * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float s = 0.0f;
#pragma unroll 8
    for (int i = 0; i < d; ++i) s = fmaf(bk[i * d + j], q[i], s);  // rows of Bk: coalesced over j
    qp[static_cast<size_t>(qh) * d + j] = s * scale;
  }
}

// Where compressed token v of head h lives: its level and its slot in that level's records.
__device__ __forceinline__ int LevelOf(const Locator& loc, int64_t& v) {
  int l = 0;
  while (l + 1 < klr::kTaleLevels && v >= loc.count[l]) v -= loc.count[l++];
  return l;
}

// Partial results per (head, chunk): m[group], l[group], coef[group][d], exact[group][d].
// One warp per token, lanes over coefficients (or channels, for the exact window): scores by
// truncated dot products reduced with shuffles; after the chunk's softmax, each warp accumulates
// p-weighted value coefficients in registers and the warps fold them in shared memory.
// Dynamic smem: qp [group][d], qs [group][d], sc [group][kChunk], coef [group][d], exact [group][d].
template <int G>  // query heads per KV head, rounded up to 4 or 8: register arrays sized at compile time
__global__ void __launch_bounds__(kThreads, G == 4 ? 5 : 2) TalePartialKernel(klr::TaleAttentionArgs a, float scale,
                                                              int chunks, const float* qproj, float* partial,
                                                              float* window_scores) {
  const int h = blockIdx.y, chunk = blockIdx.x;
  const int d = a.head_dim, group = a.num_q_heads / a.num_kv_heads;
  extern __shared__ float smem[];
  float* qp = smem;                  // [group][d] projected, scaled
  float* qs = qp + group * d;        // [group][d] raw, scaled (window)
  float* sc = qs + group * d;        // [group][kChunk]
  float* coef_s = sc + group * kChunk;  // [group][d]
  float* exact_s = coef_s + group * d;  // [group][d]
  __shared__ float red_m[G], red_l[G];

  const float* q0 = a.query + static_cast<size_t>(h) * group * d;
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) {
    qp[p] = qproj[static_cast<size_t>(h) * group * d + p];
    qs[p] = q0[p] * scale;
    coef_s[p] = 0.0f;
    exact_s[p] = 0.0f;
  }
  __syncthreads();

  const Locator loc = Locate(a, h);
  const int64_t total = loc.compressed + a.window_tokens;
  const int64_t begin = static_cast<int64_t>(chunk) * kChunk;
  const int n = static_cast<int>(begin >= total ? 0 : (total - begin < kChunk ? total - begin : kChunk));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // Lanes per token: the chunk's tokens are in bucket order (levels by decreasing rank, then the
  // exact window), so its first token has the highest rank; W = that rank / 2 rounded up to a
  // power of two (at most 32) gives every lane <= 4 coefficients in the value pass, and lets a
  // warp take 32 / W low-rank tokens at once.
  int rank_max = d;
  if (n > 0 && begin + n <= loc.compressed) {  // no window token in this chunk
    int64_t vk = begin, vv = begin;
    rank_max = max(a.key_layout.levels[LevelOf(loc, vk)].rank, a.value_layout.levels[LevelOf(loc, vv)].rank);
  }
  int W = 1;
  while (W < 32 && 2 * W < rank_max) W *= 2;
  const int per_warp = 32 / W, sub = lane / W, sl = lane % W;

  // Scores: W lanes per token, 32 / W tokens per warp.
  for (int t0 = warp * per_warp; t0 < n; t0 += (kThreads / 32) * per_warp) {
    const int t = t0 + sub;
    const bool live = t < n;
    int64_t v = begin + t;
    const bool in_window = v >= loc.compressed;
    float acc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) acc[g] = 0.0f;
    if (live && !in_window) {
      const int l = LevelOf(loc, v);
      const klr::TaleLevelLayout& lv = a.key_layout.levels[l];
      const uint8_t* rec = a.levels[l].key_records + (static_cast<size_t>(h) * a.levels[l].capacity + v) * lv.record_bytes;
      for (int i = sl; i < lv.rank; i += W) {
        const float x = DecodeOne(lv, rec, i);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          if (g < group) acc[g] = fmaf(qp[g * d + i], x, acc[g]);
        }
      }
    } else if (live) {
      const float* k = a.window_keys + (static_cast<size_t>(v - loc.compressed) * a.num_kv_heads + h) * d;
      for (int i = sl; i < d; i += W) {
        const float x = k[i];
#pragma unroll
        for (int g = 0; g < G; ++g) {
          if (g < group) acc[g] = fmaf(qs[g * d + i], x, acc[g]);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (g < group) {
        float s = acc[g];
        for (int o = W / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (sl == 0 && live) {
          sc[g * kChunk + t] = s;
          if (window_scores != nullptr && in_window) {
            const int64_t w = begin + t - loc.compressed;
            window_scores[(static_cast<size_t>(h) * group + g) * a.window_tokens + w] = s;
          }
        }
      }
    }
  }
  __syncthreads();
  // Softmax of the chunk, per query: warp g takes query g.
  for (int g = warp; g < group; g += kThreads / 32) {
    float m = -INFINITY;
    for (int t = lane; t < n; t += 32) m = fmaxf(m, sc[g * kChunk + t]);
    m = WarpMax(m);
    float sum = 0.0f;
    for (int t = lane; t < n; t += 32) {
      const float p = __expf(sc[g * kChunk + t] - m);
      sc[g * kChunk + t] = p;
      sum += p;
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      red_m[g] = m;
      red_l[g] = sum;
    }
  }
  __syncthreads();

  // Values: W lanes per token as above; lane sl owns coefficients sl + W * k, in passes of 4 * W
  // over [0, rank_max) (one pass unless the chunk holds full-rank tokens or the window and d > 128),
  // compressed tokens [0, nc) into coef_s and window tokens [nc, n) into exact_s, one accumulator
  // set at a time (registers decide the occupancy here). Lanes owning the same coefficients in
  // different tokens fold by shuffles, then into shared memory.
  const int nc = static_cast<int>(loc.compressed <= begin ? 0 : (loc.compressed - begin < n ? loc.compressed - begin : n));
  for (int window = 0; window < 2; ++window) {
    const int t_begin = window ? nc : 0, t_end = window ? n : nc;
    if (t_begin >= t_end) continue;  // the same for the whole block
    float* target = window ? exact_s : coef_s;
    for (int i0 = 0; i0 < rank_max; i0 += 4 * W) {
      float acc[G][4];
#pragma unroll
      for (int g = 0; g < G; ++g) {
#pragma unroll
        for (int k = 0; k < 4; ++k) acc[g][k] = 0.0f;
      }
      for (int t0 = t_begin + warp * per_warp; t0 < t_end; t0 += (kThreads / 32) * per_warp) {
        const int t = t0 + sub;
        if (t >= t_end) continue;
        int64_t v = begin + t;
        if (!window) {
          const int l = LevelOf(loc, v);
          const klr::TaleLevelLayout& lv = a.value_layout.levels[l];
          const uint8_t* rec = a.levels[l].value_records + (static_cast<size_t>(h) * a.levels[l].capacity + v) * lv.record_bytes;
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const int i = i0 + sl + W * k;
            if (i < lv.rank) {
              const float x = DecodeOne(lv, rec, i);
#pragma unroll
              for (int g = 0; g < G; ++g) {
                if (g < group) acc[g][k] = fmaf(sc[g * kChunk + t], x, acc[g][k]);
              }
            }
          }
        } else {
          const float* val = a.window_values + (static_cast<size_t>(v - loc.compressed) * a.num_kv_heads + h) * d;
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const int i = i0 + sl + W * k;
            if (i < d) {
              const float x = val[i];
#pragma unroll
              for (int g = 0; g < G; ++g) {
                if (g < group) acc[g][k] = fmaf(sc[g * kChunk + t], x, acc[g][k]);
              }
            }
          }
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (g < group) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            float c = acc[g][k];
            for (int o = W; o < 32; o <<= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
            const int i = i0 + sl + W * k;
            if (sub == 0 && i < d) atomicAdd(&target[g * d + i], c);
          }
        }
      }
    }
  }
  __syncthreads();

  float* out = partial + (static_cast<size_t>(h) * chunks + chunk) * (2 * group + 2 * group * d);
  if (threadIdx.x < group) {
    out[threadIdx.x] = n > 0 ? red_m[threadIdx.x] : -INFINITY;
    out[group + threadIdx.x] = n > 0 ? red_l[threadIdx.x] : 0.0f;
  }
  for (int p = threadIdx.x; p < group * d; p += blockDim.x) {
    out[2 * group + p] = coef_s[p];
    out[2 * group + group * d + p] = exact_s[p];
  }
}

// One block per query head: merge the chunks (block-wide max and sum, warps over chunks), project
// the coefficients back through the value basis once.
__global__ void __launch_bounds__(kThreads) TaleCombineKernel(klr::TaleAttentionArgs a, int chunks,
                                                              const float* partial, const float* window_scores) {
  const int qh = blockIdx.x;
  const int group = a.num_q_heads / a.num_kv_heads;
  const int h = qh / group, g = qh % group, d = a.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  extern __shared__ float smem[];
  float* coef = smem;       // [d]
  float* exact = smem + d;  // [d]
  __shared__ float fold_c[kThreads / 32][32], fold_e[kThreads / 32][32];
  __shared__ float scratch[32];
  const size_t stride = 2 * group + 2 * static_cast<size_t>(group) * d;
  const float* base = partial + static_cast<size_t>(h) * chunks * stride;
  // The chunks' maxima and sums, block-wide (empty chunks carry m = -inf and are skipped).
  float m = -INFINITY;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) m = fmaxf(m, base[c * stride + g]);
  m = kvt::gpu::internal::BlockMax(m, scratch);
  float l = 0.0f;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    const float mc = base[c * stride + g];
    if (mc > -INFINITY) l += base[c * stride + group + g] * __expf(mc - m);
  }
  l = kvt::gpu::internal::BlockSum(l, scratch);
  // Coefficient and window sums: the warps take the chunks round-robin, lanes 32 coefficients.
  for (int c0 = 0; c0 < d; c0 += 32) {
    const int i = c0 + lane;
    float cf = 0.0f, ex = 0.0f;
    if (i < d) {
      for (int c = warp; c < chunks; c += kThreads / 32) {
        const float mc = base[c * stride + g];
        if (!(mc > -INFINITY)) continue;
        const float f = __expf(mc - m);
        cf = fmaf(f, base[c * stride + 2 * group + g * d + i], cf);
        ex = fmaf(f, base[c * stride + 2 * group + group * d + g * d + i], ex);
      }
    }
    fold_c[warp][lane] = cf;
    fold_e[warp][lane] = ex;
    __syncthreads();
    if (warp == 0 && i < d) {
      float sc = 0.0f, se = 0.0f;
      for (int w = 0; w < kThreads / 32; ++w) {
        sc += fold_c[w][lane];
        se += fold_e[w][lane];
      }
      coef[i] = sc;
      exact[i] = se;
    }
    __syncthreads();
  }
  // out = Bv coef: one warp per output row, lanes along the row (coalesced basis reads).
  const float* bv = a.value_basis + static_cast<size_t>(h) * d * d;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int i = warp; i < d; i += kThreads / 32) {
    float x = 0.0f;
    for (int j = lane; j < d; j += 32) x = fmaf(bv[i * d + j], coef[j], x);
    x = WarpSum(x);
    if (lane == 0) a.out[static_cast<size_t>(qh) * d + i] = (x + exact[i]) * inv;
  }
  if (a.window_attention != nullptr && window_scores != nullptr) {
    const float* ws = window_scores + (static_cast<size_t>(h) * group + g) * a.window_tokens;
    for (int w = threadIdx.x; w < a.window_tokens; w += blockDim.x) {
      atomicAdd(a.window_attention + static_cast<size_t>(h) * a.window_tokens + w,
                __expf(ws[w] - m) * inv / static_cast<float>(group));
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

// Workspace, in floats: partial | window scores [q_heads][window] | projected queries [q_heads][d].
size_t TaleAttentionWorkspaceBytesCuda(const klr::TaleAttentionArgs& a) {
  if (a.num_kv_heads < 1) return 0;
  const size_t window = static_cast<size_t>(a.num_q_heads) * (a.window_tokens > 0 ? a.window_tokens : 0);
  const size_t projected = static_cast<size_t>(a.num_q_heads > 0 ? a.num_q_heads : 0) * (a.head_dim > 0 ? a.head_dim : 0);
  return (PartialFloats(a) + window + projected) * sizeof(float) + 256;
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
  float* qproj = partial + PartialFloats(a) + static_cast<size_t>(a.num_q_heads) * (a.window_tokens > 0 ? a.window_tokens : 0);
  TaleProjectQueryKernel<<<a.num_q_heads, a.head_dim < 32 ? 32 : (a.head_dim > 256 ? 256 : a.head_dim), 0, stream>>>(
      a, scale, qproj);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const size_t smem1 = sizeof(float) * (4 * group * a.head_dim + group * kChunk);
  const auto partial_kernel = group <= 4 ? TalePartialKernel<4> : TalePartialKernel<8>;
  if (smem1 > 48 * 1024) {
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        partial_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem1)));
  }
  partial_kernel<<<dim3(chunks, a.num_kv_heads), kThreads, smem1, stream>>>(a, scale, chunks, qproj, partial,
                                                                          window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  TaleCombineKernel<<<a.num_q_heads, kThreads, 2 * sizeof(float) * a.head_dim, stream>>>(a, chunks, partial,
                                                                                     window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
