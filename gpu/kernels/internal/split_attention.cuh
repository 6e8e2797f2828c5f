// Split-K ("flash-decoding") decode attention shared by decode_attention.cu and kivi_attention.cu.
//
// The tokens are cut into tiles of kSplitTile; each block owns a run of tiles of one KV head
// (a "split") and, tile by tile, computes the logits of the query group against the tile's keys,
// folds them into a running softmax (max m, sum l, output rescaled when m grows) and adds the
// p-weighted values. It writes its unnormalized output with (m, l); a second kernel merges the
// splits of each query row with log-sum-exp weights. Nothing per token goes back to global memory.
//
// Keys and values are read through a cache functor `Kv` that supplies:
//   int64_t quantized_keys             tokens [0, quantized_keys) take the thread-per-token path:
//   template <int G> void QuantizedLogits(t, h, qt_s, acc[G])
//                                      acc[j] += q_j . K(t) over all channels, with the query
//                                      transposed in shared memory: qt_s[c * G + j]
//   float K(t, h, c), V(t, h, c)       one channel (any head_dim)
//   void K8(t, h, c0, k[8]), V8(...)   channels c0..c0+7 (vector path; c0 a multiple of 8)
// The vector path (kVec) is used when head_dim / 8 divides 32 and the caller checked alignment:
// head_dim / 8 lanes share a token, each lane owning 8 channels.
//
// G is the query group rounded up to 4, 8 or 16, so per-head arrays live in registers with
// compile-time bounds; rows j >= g are computed on zero queries and never written.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/status.h"
#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu::internal {

constexpr int kSplitThreads = 256;
constexpr int kSplitWarps = kSplitThreads / 32;
constexpr int kSplitMaxGroup = 16;  // query heads per KV head
constexpr int kSplitTile = 256;     // tokens per tile
constexpr size_t kSplitMaxSmem = 200 * 1024;  // H100: up to 227 KiB per block with the opt-in
constexpr int64_t kSplitTargetBlocks = 1024;  // enough to fill a large GPU a few times over

struct SplitWorkspace {
  float* partial;  // [splits][q_heads][d], unnormalized
  float* row_max;  // [splits][q_heads]
  float* row_sum;  // [splits][q_heads]
  int64_t splits;  // per KV head
  int64_t tiles_per_split;
};

inline int SplitGroup(int g) { return g <= 4 ? 4 : g <= 8 ? 8 : 16; }
inline int64_t SplitTilesPer(int kv_heads, int64_t tokens) {
  const int64_t tiles = CeilDiv(tokens, kSplitTile);
  return CeilDiv(tiles * kv_heads, kSplitTargetBlocks);
}
inline int64_t SplitCount(int kv_heads, int64_t tokens) {
  return CeilDiv(CeilDiv(tokens, kSplitTile), SplitTilesPer(kv_heads, tokens));
}
// q_s [G][d], qt_s [d][G], o_s [G][d], p_s [G][tile], plus per-row m, l and rescale factors.
inline size_t SplitSmemBytes(int g, int d) {
  const size_t G = SplitGroup(g);
  return sizeof(float) * (3 * G * d + G * kSplitTile + 3 * G);
}
inline size_t SplitWorkspaceBytes(int q_heads, int kv_heads, int d, int64_t tokens) {
  return sizeof(float) * static_cast<size_t>(SplitCount(kv_heads, tokens)) * q_heads * (d + 2);
}
inline SplitWorkspace CarveSplit(void* ws, int q_heads, int kv_heads, int d, int64_t tokens) {
  SplitWorkspace w;
  w.tiles_per_split = SplitTilesPer(kv_heads, tokens);
  w.splits = SplitCount(kv_heads, tokens);
  w.partial = static_cast<float*>(ws);
  w.row_max = w.partial + static_cast<size_t>(w.splits) * q_heads * d;
  w.row_sum = w.row_max + static_cast<size_t>(w.splits) * q_heads;
  return w;
}
// True when head_dim suits the vector path (the functor checks its own alignment).
inline bool SplitVecShape(int d) { return d % 8 == 0 && d <= 256 && 32 % (d / 8) == 0; }

// p_s[j][i] = scaled logit of query j against token t0 + i, i < n.
template <int G, typename Kv, bool kVec>
__device__ void TileLogits(const Kv& kv, int64_t t0, int n, int h, const float* q_s, const float* qt_s, int d,
                           float sm_scale, float* p_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Quantized keys: one thread per token.
  const int nq = kv.quantized_keys <= t0 ? 0 : static_cast<int>(kv.quantized_keys - t0 < n ? kv.quantized_keys - t0 : n);
  for (int i = threadIdx.x; i < nq; i += blockDim.x) {
    float acc[G];
#pragma unroll
    for (int j = 0; j < G; ++j) acc[j] = 0.0f;
    kv.template QuantizedLogits<G>(t0 + i, h, qt_s, acc);
#pragma unroll
    for (int j = 0; j < G; ++j) p_s[j * kSplitTile + i] = acc[j] * sm_scale;
  }
  // Full-precision keys.
  if constexpr (kVec) {
    const int lpt = d / 8, tpw = 32 / lpt, sub = lane / lpt, c0 = (lane % lpt) * 8;
    for (int base = nq + warp * tpw; base < n; base += kSplitWarps * tpw) {
      const int i = base + sub;
      float k[8];
      if (i < n) {
        kv.K8(t0 + i, h, c0, k);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) k[e] = 0.0f;
      }
#pragma unroll
      for (int j = 0; j < G; ++j) {
        const float4 qa = *reinterpret_cast<const float4*>(q_s + j * d + c0);
        const float4 qb = *reinterpret_cast<const float4*>(q_s + j * d + c0 + 4);
        float s = qa.x * k[0] + qa.y * k[1] + qa.z * k[2] + qa.w * k[3] + qb.x * k[4] + qb.y * k[5] +
                  qb.z * k[6] + qb.w * k[7];
        for (int o = lpt / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane % lpt == 0 && i < n) p_s[j * kSplitTile + i] = s * sm_scale;
      }
    }
  } else {
    for (int i = nq + warp; i < n; i += kSplitWarps) {
      float acc[G];
#pragma unroll
      for (int j = 0; j < G; ++j) acc[j] = 0.0f;
      for (int c = lane; c < d; c += 32) {
        const float k = kv.K(t0 + i, h, c);
#pragma unroll
        for (int j = 0; j < G; ++j) acc[j] = fmaf(q_s[j * d + c], k, acc[j]);
      }
#pragma unroll
      for (int j = 0; j < G; ++j) {
        const float s = WarpSum(acc[j]);
        if (lane == 0) p_s[j * kSplitTile + i] = s * sm_scale;
      }
    }
  }
}

// o_s[j][c] += sum over the tile of p_s[j][i] * V(t0 + i, c)
template <int G, typename Kv, bool kVec>
__device__ void TileValues(const Kv& kv, int64_t t0, int n, int h, const float* p_s, int d, float* o_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if constexpr (kVec) {
    constexpr int kJ = 4;  // query heads per pass: 32 accumulators per lane
    const int lpt = d / 8, tpw = 32 / lpt, sub = lane / lpt, c0 = (lane % lpt) * 8;
#pragma unroll 1
    for (int j0 = 0; j0 < G; j0 += kJ) {
      float acc[kJ][8];
#pragma unroll
      for (int jj = 0; jj < kJ; ++jj) {
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[jj][e] = 0.0f;
      }
#pragma unroll 2
      for (int i = warp * tpw + sub; i < n; i += kSplitWarps * tpw) {
        float v[8];
        kv.V8(t0 + i, h, c0, v);
#pragma unroll
        for (int jj = 0; jj < kJ; ++jj) {
          const float p = p_s[(j0 + jj) * kSplitTile + i];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[jj][e] = fmaf(p, v[e], acc[jj][e]);
        }
      }
      // Lanes owning the same channels (same lane % lpt) hold different tokens: fold them.
#pragma unroll
      for (int jj = 0; jj < kJ; ++jj) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          for (int o = lpt; o < 32; o <<= 1) acc[jj][e] += __shfl_xor_sync(0xffffffffu, acc[jj][e], o);
        }
      }
      if (sub == 0) {
#pragma unroll
        for (int jj = 0; jj < kJ; ++jj) {
#pragma unroll
          for (int e = 0; e < 8; ++e) atomicAdd(&o_s[(j0 + jj) * d + c0 + e], acc[jj][e]);
        }
      }
    }
  } else {
    for (int c = lane; c < d; c += 32) {
      float acc[G];
#pragma unroll
      for (int j = 0; j < G; ++j) acc[j] = 0.0f;
      for (int i = warp; i < n; i += kSplitWarps) {
        const float v = kv.V(t0 + i, h, c);
#pragma unroll
        for (int j = 0; j < G; ++j) acc[j] = fmaf(p_s[j * kSplitTile + i], v, acc[j]);
      }
#pragma unroll
      for (int j = 0; j < G; ++j) atomicAdd(&o_s[j * d + c], acc[j]);
    }
  }
}

// Grid (splits, kv_heads), kSplitThreads threads, SplitSmemBytes(g, d) dynamic smem.
template <int G, typename Kv, bool kVec>
__global__ void __launch_bounds__(kSplitThreads)
    SplitAttentionKernel(Kv kv, int64_t total, const float* query, int g, int d, int q_heads,
                         float sm_scale, SplitWorkspace w) {
  extern __shared__ __align__(16) float smem[];
  float* q_s = smem;               // [G][d]
  float* qt_s = q_s + G * d;       // [d][G]
  float* o_s = qt_s + G * d;       // [G][d]
  float* p_s = o_s + G * d;        // [G][tile]
  float* m_s = p_s + G * kSplitTile;  // [G] running max
  float* l_s = m_s + G;               // [G] running sum
  float* r_s = l_s + G;               // [G] rescale of this tile
  const int h = blockIdx.y;
  const int64_t split = blockIdx.x;
  const float* q = query + static_cast<int64_t>(h) * g * d;
  for (int e = threadIdx.x; e < G * d; e += blockDim.x) {
    const int j = e / d, c = e - j * d;
    const float x = j < g ? q[e] : 0.0f;
    q_s[e] = x;
    qt_s[c * G + j] = x;
    o_s[e] = 0.0f;
  }
  if (threadIdx.x < G) {
    m_s[threadIdx.x] = -INFINITY;
    l_s[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tile_end = (split + 1) * w.tiles_per_split * kSplitTile;
  for (int64_t t0 = split * w.tiles_per_split * kSplitTile; t0 < total && t0 < tile_end; t0 += kSplitTile) {
    const int n = static_cast<int>(total - t0 < kSplitTile ? total - t0 : kSplitTile);
    TileLogits<G, Kv, kVec>(kv, t0, n, h, q_s, qt_s, d, sm_scale, p_s);
    __syncthreads();
    for (int j = warp; j < G; j += kSplitWarps) {
      float* row = p_s + j * kSplitTile;
      float m = -INFINITY;
      for (int i = lane; i < n; i += 32) m = fmaxf(m, row[i]);
      m = fmaxf(WarpMax(m), m_s[j]);
      float l = 0.0f;
      for (int i = lane; i < n; i += 32) {
        const float e = __expf(row[i] - m);
        row[i] = e;
        l += e;
      }
      l = WarpSum(l);
      if (lane == 0) {
        const float rescale = __expf(m_s[j] - m);  // 0 on the first tile (m_s = -inf)
        r_s[j] = rescale;
        l_s[j] = l_s[j] * rescale + l;
        m_s[j] = m;
      }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < G * d; e += blockDim.x) o_s[e] *= r_s[e / d];
    __syncthreads();
    TileValues<G, Kv, kVec>(kv, t0, n, h, p_s, d, o_s);
    __syncthreads();
  }
  float* out = w.partial + (split * q_heads + static_cast<int64_t>(h) * g) * d;
  for (int e = threadIdx.x; e < g * d; e += blockDim.x) out[e] = o_s[e];
  if (threadIdx.x < g) {
    w.row_max[split * q_heads + h * g + threadIdx.x] = m_s[threadIdx.x];
    w.row_sum[split * q_heads + h * g + threadIdx.x] = l_s[threadIdx.x];
  }
}

template <int G, typename Kv, bool kVec>
Status LaunchSplitAttentionG(const Kv& kv, int64_t total, const float* query, int g, int d, int q_heads,
                             int kv_heads, float sm_scale, const SplitWorkspace& w, cudaStream_t stream) {
  const size_t smem = SplitSmemBytes(g, d);
  if (smem > 48 * 1024) {  // beyond the default: opt in (once per kernel is enough; it is cheap)
    KVT_RETURN_IF_ERROR(CudaStatus(cudaFuncSetAttribute(SplitAttentionKernel<G, Kv, kVec>,
                                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                        static_cast<int>(smem)),
                                   "cudaFuncSetAttribute(SplitAttentionKernel)"));
  }
  SplitAttentionKernel<G, Kv, kVec><<<dim3(static_cast<unsigned>(w.splits), kv_heads), kSplitThreads, smem, stream>>>(
      kv, total, query, g, d, q_heads, sm_scale, w);
  return LaunchStatus("SplitAttentionKernel");
}

// Launches the split kernel for the group size G that covers g (g <= 16, SplitSmemBytes checked).
template <typename Kv, bool kVec>
Status LaunchSplitAttention(const Kv& kv, int64_t total, const float* query, int g, int d, int q_heads,
                            int kv_heads, float sm_scale, const SplitWorkspace& w, cudaStream_t stream) {
  switch (SplitGroup(g)) {
    case 4: return LaunchSplitAttentionG<4, Kv, kVec>(kv, total, query, g, d, q_heads, kv_heads, sm_scale, w, stream);
    case 8: return LaunchSplitAttentionG<8, Kv, kVec>(kv, total, query, g, d, q_heads, kv_heads, sm_scale, w, stream);
    default: return LaunchSplitAttentionG<16, Kv, kVec>(kv, total, query, g, d, q_heads, kv_heads, sm_scale, w, stream);
  }
}

// Grid (q_heads, ceil(d / 32)), kSplitThreads threads: block (r, y) writes channels
// [32y, 32y + 32) of query row r: out[c] = sum_s e^(m_s - M) o_s[c] / sum_s e^(m_s - M) l_s.
// The warps take the splits round-robin, then fold through shared memory.
static __global__ void __launch_bounds__(kSplitThreads) SplitCombineKernel(SplitWorkspace w, int q_heads, int d,
                                                                           float* out) {
  __shared__ float fold[kSplitWarps][32];
  __shared__ float scratch[32];
  const int r = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int c = blockIdx.y * 32 + lane;
  float m = -INFINITY;
  for (int64_t s = threadIdx.x; s < w.splits; s += blockDim.x) m = fmaxf(m, w.row_max[s * q_heads + r]);
  m = BlockMax(m, scratch);
  float l = 0.0f;
  for (int64_t s = threadIdx.x; s < w.splits; s += blockDim.x) {
    l += __expf(w.row_max[s * q_heads + r] - m) * w.row_sum[s * q_heads + r];
  }
  l = BlockSum(l, scratch);
  float acc = 0.0f;
  if (c < d) {
#pragma unroll 4
    for (int64_t s = warp; s < w.splits; s += kSplitWarps) {
      acc = fmaf(__expf(w.row_max[s * q_heads + r] - m), w.partial[(s * q_heads + r) * d + c], acc);
    }
  }
  fold[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && c < d) {
    float sum = 0.0f;
    for (int k = 0; k < kSplitWarps; ++k) sum += fold[k][lane];
    out[static_cast<int64_t>(r) * d + c] = sum / l;
  }
}

inline Status LaunchSplitCombine(const SplitWorkspace& w, int q_heads, int d, float* out, cudaStream_t stream) {
  SplitCombineKernel<<<dim3(q_heads, static_cast<unsigned>(CeilDiv(d, 32))), kSplitThreads, 0, stream>>>(w, q_heads, d, out);
  return LaunchStatus("SplitCombineKernel");
}

}  // namespace kvt::gpu::internal
