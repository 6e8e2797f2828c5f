#include "gpu/kernels/lowrank/tale_attention.cuh"

#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"
#include "gpu/kernels/lowrank/internal/cuda_check.h"

namespace kvt::gpu::lowrank {

namespace klr = kernels::lowrank;

namespace {

constexpr int kThreads = 256;  // one thread per token in the key pass: a chunk holds <= kThreads tokens
constexpr int kMaxGroup = 8;
constexpr size_t kSmemBudget = 96 * 1024;  // per block: keeps >= 2 blocks resident per SM

using kvt::gpu::internal::CeilDiv;
using kvt::gpu::internal::DivNonNeg;
using kvt::gpu::internal::WarpMax;
using kvt::gpu::internal::WarpSum;

__device__ __forceinline__ float HalfBits(const uint8_t* p) {
  __half_raw r;
  r.x = static_cast<unsigned short>(p[0] | (p[1] << 8));
  return __half2float(__half(r));
}

// code (< 2^23) minus `offset`, without a conversion instruction: 2^23 + code has code in its
// mantissa, so one OR and an exact FADD replace I2F (quarter rate on sm_90); the half-integer
// offset is subtracted separately (2^23 + offset would round it away).
__device__ __forceinline__ float CodeMinus(uint32_t code, float offset) {
  return (__uint_as_float(0x4B000000u | code) - 8388608.0f) - offset;
}

// ---- Where a block's tokens are ---------------------------------------------------------------
//
// Per KV head the tokens are the compressed ones, bucket by bucket (level 0 first), then the exact
// window. Blocks never straddle a bucket: bucket l takes ceil(count_l / chunk) blocks, the window
// ceil(window / chunk) more, and blocks past those are empty. The grid's x extent is an upper bound
// (max_head_tokens / chunk + levels + window blocks) because the counts live on the device.

struct Locator {
  int64_t count[klr::kTaleLevels];
};

__device__ __forceinline__ Locator Locate(const klr::TaleAttentionArgs& a, int h) {
  Locator loc;
  int64_t compressed = 0;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    int64_t c = a.levels[l].tokens != nullptr ? a.levels[l].tokens[h] : 0;
    c = c < 0 ? 0 : (c > a.levels[l].capacity ? a.levels[l].capacity : c);
    if (compressed + c > a.max_head_tokens) c = a.max_head_tokens - compressed;
    loc.count[l] = c;
    compressed += c;
  }
  return loc;
}

enum class ChunkKind { kEmpty, kLevel, kWindow };

struct Chunk {
  ChunkKind kind = ChunkKind::kEmpty;
  int level = 0;
  int64_t first = 0;  // token index inside the bucket (or the window)
  int n = 0;          // tokens, 1 .. chunk
};

// Blocks [begin, end) of a head hold its window tokens.
struct WindowBlocks {
  int64_t begin = 0, end = 0;
};

__device__ __forceinline__ WindowBlocks WindowBlocksOf(const Locator& loc, int chunk, int window) {
  WindowBlocks w;
  for (int l = 0; l < klr::kTaleLevels; ++l) w.begin += DivNonNeg(loc.count[l] + chunk - 1, chunk);
  w.end = w.begin + DivNonNeg(static_cast<int64_t>(window) + chunk - 1, chunk);
  return w;
}

__device__ __forceinline__ Chunk ChunkOf(const Locator& loc, int64_t b, int chunk, int window) {
  Chunk c;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    const int64_t blocks = DivNonNeg(loc.count[l] + chunk - 1, chunk);
    if (b < blocks) {
      c.kind = ChunkKind::kLevel;
      c.level = l;
      c.first = b * chunk;
      c.n = static_cast<int>(min(static_cast<int64_t>(chunk), loc.count[l] - c.first));
      return c;
    }
    b -= blocks;
  }
  if (b < DivNonNeg(static_cast<int64_t>(window) + chunk - 1, chunk)) {
    c.kind = ChunkKind::kWindow;
    c.first = b * chunk;
    c.n = static_cast<int>(min(static_cast<int64_t>(chunk), window - c.first));
  }
  return c;
}

// ---- Query projection -------------------------------------------------------------------------

// qp[qh][j] = scale * (Bk^T q)_j, once per step for every query head. Grid (q_heads, ceil(d / 32)),
// 256 threads: lanes over 32 outputs j (coalesced rows of Bk), warps over slices of i, each with
// its loads independent, folded in shared memory.
__global__ void __launch_bounds__(kThreads) TaleProjectQueryKernel(klr::TaleAttentionArgs a, float scale, float* qp) {
  constexpr int kWarps = kThreads / 32;
  const int qh = blockIdx.x, d = a.head_dim, group = a.num_q_heads / a.num_kv_heads, h = qh / group;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, j = blockIdx.y * 32 + lane;
  const float* bk = a.key_basis + static_cast<size_t>(h) * d * d;
  const float* q = a.query + static_cast<size_t>(qh) * d;
  __shared__ float fold[kWarps][32];
  float s = 0.0f;
  if (j < d) {
#pragma unroll 8
    for (int i = warp; i < d; i += kWarps) s = fmaf(bk[i * d + j], q[i], s);
  }
  fold[warp][lane] = s;
  __syncthreads();
  if (warp == 0 && j < d) {
    float t = 0.0f;
    for (int w = 0; w < kWarps; ++w) t += fold[w][lane];
    qp[static_cast<size_t>(qh) * d + j] = t * scale;
  }
}

// ---- Partial kernel: one block per (chunk, KV head) -------------------------------------------

// Copies `bytes` from global to shared memory with the widest loads the source alignment allows.
__device__ __forceinline__ void Stage(const uint8_t* src, uint8_t* dst, size_t bytes) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(src);
  size_t done = 0;
  if ((addr & 15) == 0) {
    const size_t vec = bytes / 16;
    for (size_t i = threadIdx.x; i < vec; i += blockDim.x) {
      reinterpret_cast<uint4*>(dst)[i] = __ldg(reinterpret_cast<const uint4*>(src) + i);
    }
    done = vec * 16;
  } else if ((addr & 3) == 0) {
    const size_t vec = bytes / 4;
    for (size_t i = threadIdx.x; i < vec; i += blockDim.x) {
      reinterpret_cast<uint32_t*>(dst)[i] = __ldg(reinterpret_cast<const uint32_t*>(src) + i);
    }
    done = vec * 4;
  }
  for (size_t i = done + threadIdx.x; i < bytes; i += blockDim.x) dst[i] = src[i];
}

// Scores one segment of one key record against the projected queries qp [d][G] (smem):
// acc[g] += sum_i qp[i][g] * coefficient_i.
template <int G, int B>
__device__ __forceinline__ void ScoreSegment(const uint8_t* rec, const klr::TaleSegment& seg, const float* qp,
                                             float (&acc)[G]) {
  const int len = seg.end - seg.begin;
  if (len <= 0) return;
  const uint8_t* codes = rec + seg.code_offset;
  float part[G];
#pragma unroll
  for (int g = 0; g < G; ++g) part[g] = 0.0f;
  auto fold = [&](int i, float x) {
    const float4* q4 = reinterpret_cast<const float4*>(qp + i * G);
#pragma unroll
    for (int v = 0; v < G / 4; ++v) {
      const float4 q = q4[v];
      part[4 * v + 0] = fmaf(q.x, x, part[4 * v + 0]);
      part[4 * v + 1] = fmaf(q.y, x, part[4 * v + 1]);
      part[4 * v + 2] = fmaf(q.z, x, part[4 * v + 2]);
      part[4 * v + 3] = fmaf(q.w, x, part[4 * v + 3]);
    }
  };
  if constexpr (B == 32) {
    for (int k = 0; k < len; ++k) {
      float x;
      memcpy(&x, codes + 4 * k, 4);
      fold(seg.begin + k, x);
    }
  } else if constexpr (B == 16) {
    for (int k = 0; k < len; ++k) fold(seg.begin + k, HalfBits(codes + 2 * k));
  } else {
    constexpr int kPerByte = 8 / B;
    constexpr uint32_t kMask = (1u << B) - 1;
    const float bias = 0.5f * static_cast<float>(kMask);
    constexpr int kPerWord = 4 * kPerByte;
    int j0 = 0;  // bytes done 32 bits at a time
    if ((reinterpret_cast<uintptr_t>(codes) & 3) == 0) {
      const int words = len / kPerWord;
      for (int w = 0; w < words; ++w) {
        const uint32_t word = *reinterpret_cast<const uint32_t*>(codes + 4 * w);
#pragma unroll
        for (int c = 0; c < kPerWord; ++c) fold(seg.begin + w * kPerWord + c, CodeMinus((word >> (c * B)) & kMask, bias));
      }
      j0 = 4 * words;
    }
    const int full = len / kPerByte;  // bytes whose every code is in the segment
    for (int j = j0; j < full; ++j) {
      const uint32_t byte = codes[j];
#pragma unroll
      for (int c = 0; c < kPerByte; ++c) fold(seg.begin + j * kPerByte + c, CodeMinus((byte >> (c * B)) & kMask, bias));
    }
    for (int k = full * kPerByte; k < len; ++k) {
      const uint32_t byte = codes[k / kPerByte];
      fold(seg.begin + k, CodeMinus((byte >> ((k % kPerByte) * B)) & kMask, bias));
    }
    const float scale = HalfBits(rec + seg.scale_offset);
#pragma unroll
    for (int g = 0; g < G; ++g) part[g] *= scale;
  }
#pragma unroll
  for (int g = 0; g < G; ++g) acc[g] += part[g];
}

// The value pass's unit of work for one thread: a byte of codes (2-, 4-, 8-bit segments) or one
// coefficient (16-, 32-bit), the same position in every token of the chunk.
struct ValueUnit {
  int bits = 0;
  int byte_offset = 0;   // in the record
  int scale_offset = -1;
  int first = 0;         // first coefficient
  int count = 0;         // coefficients in the unit (<= 4)
};

__device__ __forceinline__ int UnitsOf(const klr::TaleSegment& seg) {
  const int len = seg.end - seg.begin;
  if (len <= 0) return 0;
  return seg.bits >= 16 ? len : (len * seg.bits + 7) / 8;
}

__device__ __forceinline__ ValueUnit UnitAt(const klr::TaleLevelLayout& lv, int u) {
  ValueUnit unit;
  for (int s = 0; s < lv.num_segments; ++s) {
    const klr::TaleSegment& seg = lv.segments[s];
    const int units = UnitsOf(seg);
    if (u < units) {
      unit.bits = seg.bits;
      unit.scale_offset = seg.scale_offset;
      if (seg.bits >= 16) {
        unit.byte_offset = seg.code_offset + u * (seg.bits / 8);
        unit.first = seg.begin + u;
        unit.count = 1;
      } else {
        const int per_byte = 8 / seg.bits;
        unit.byte_offset = seg.code_offset + u;
        unit.first = seg.begin + u * per_byte;
        unit.count = min(per_byte, seg.end - unit.first);
      }
      return unit;
    }
    u -= units;
  }
  return unit;
}

__device__ __forceinline__ int UnitCount(const klr::TaleLevelLayout& lv) {
  int n = 0;
  for (int s = 0; s < lv.num_segments; ++s) n += UnitsOf(lv.segments[s]);
  return n;
}

// Softmax of the chunk per query (warp g takes query g): p [n][G] replaces the scores in place;
// red_m / red_l get the chunk's maximum and sum.
template <int G>
__device__ __forceinline__ void ChunkSoftmax(float* p, int n, int group, float* red_m, float* red_l) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int g = warp; g < group; g += kThreads / 32) {
    float m = -INFINITY;
    for (int t = lane; t < n; t += 32) m = fmaxf(m, p[t * G + g]);
    m = WarpMax(m);
    float sum = 0.0f;
    for (int t = lane; t < n; t += 32) {
      const float e = __expf(p[t * G + g] - m);
      p[t * G + g] = e;
      sum += e;
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      red_m[g] = m;
      red_l[g] = sum;
    }
  }
}

// Partial results per (KV head, chunk), `stride` floats: m [group], l [group], payload [group][d]
// (value coefficients for a bucket chunk, exact value sums for a window chunk).
//
// Bucket chunk: the chunk's key records are staged in shared memory; one thread per token scores
// its record (segment by segment, bit width known per segment, so decoding is shifts and masks),
// then the value records replace them and each thread owns one byte (or coefficient) position of
// the record and walks its stripe of the tokens, accumulating p-weighted coefficients in registers.
// Window chunk: exact fp32 keys, one warp per token; values one thread per channel.
// Dynamic smem: staging [chunk * max record bytes] | qp [d][G] | qs [d][G] | p [chunk][G] | acc [G][d].
template <int G>
__global__ void __launch_bounds__(kThreads, G == 4 ? 4 : 2) TalePartialKernel(klr::TaleAttentionArgs a, float scale, int chunk,
                                                              int staging_bytes, int blocks_per_head,
                                                              const float* qproj, float* partial,
                                                              float* window_scores) {
  const int h = blockIdx.y, b = blockIdx.x;
  const int d = a.head_dim, group = a.num_q_heads / a.num_kv_heads;
  const size_t stride = 2 * group + static_cast<size_t>(group) * d;
  float* out = partial + (static_cast<size_t>(h) * blocks_per_head + b) * stride;
  const Chunk c = ChunkOf(Locate(a, h), b, chunk, a.window_tokens);
  if (c.kind == ChunkKind::kEmpty) {
    if (threadIdx.x < group) {
      out[threadIdx.x] = -INFINITY;
      out[group + threadIdx.x] = 0.0f;
    }
    return;
  }
  extern __shared__ __align__(16) uint8_t smem_bytes[];
  uint8_t* staging = smem_bytes;
  float* qp = reinterpret_cast<float*>(smem_bytes + staging_bytes);  // [d][G]
  float* p = qp + d * G;                                              // [chunk][G]
  float* acc_s = p + chunk * G;                                       // [G][d]
  __shared__ float red_m[G], red_l[G];
  const bool window = c.kind == ChunkKind::kWindow;

  // Queries, transposed to [i][G] (padding queries are 0): projected for buckets, raw for the window.
  for (int e = threadIdx.x; e < d * G; e += blockDim.x) {
    const int i = e / G, g = e % G;
    float q = 0.0f;
    if (g < group) {
      const size_t at = (static_cast<size_t>(h) * group + g) * d + i;
      q = window ? a.query[at] * scale : qproj[at];
    }
    qp[e] = q;
  }
  for (int e = threadIdx.x; e < G * d; e += blockDim.x) acc_s[e] = 0.0f;

  // The chunk's layouts in shared memory: segments are indexed at run time, and kernel parameters
  // indexed at run time may be copied to local memory.
  __shared__ klr::TaleLevelLayout kl, vl;
  if (threadIdx.x == 0) {
    kl = a.key_layout.levels[c.level];
    vl = a.value_layout.levels[c.level];
  }
  __syncthreads();
  const size_t row = static_cast<size_t>(h) * a.levels[c.level].capacity + c.first;
  if (!window) Stage(a.levels[c.level].key_records + row * kl.record_bytes, staging, static_cast<size_t>(c.n) * kl.record_bytes);
  __syncthreads();

  // Scores into p [t][G].
  if (!window) {
    const int t = threadIdx.x;
    if (t < c.n) {
      float acc[G];
#pragma unroll
      for (int g = 0; g < G; ++g) acc[g] = 0.0f;
      const uint8_t* rec = staging + static_cast<size_t>(t) * kl.record_bytes;
      for (int s = 0; s < kl.num_segments; ++s) {
        const klr::TaleSegment& seg = kl.segments[s];
        switch (seg.bits) {
          case 2: ScoreSegment<G, 2>(rec, seg, qp, acc); break;
          case 4: ScoreSegment<G, 4>(rec, seg, qp, acc); break;
          case 8: ScoreSegment<G, 8>(rec, seg, qp, acc); break;
          case 16: ScoreSegment<G, 16>(rec, seg, qp, acc); break;
          default: ScoreSegment<G, 32>(rec, seg, qp, acc); break;
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) p[t * G + g] = acc[g];
    }
  } else {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int t = warp; t < c.n; t += kThreads / 32) {
      const float* k = a.window_keys + (static_cast<size_t>(c.first + t) * a.num_kv_heads + h) * d;
      float acc[G];
#pragma unroll
      for (int g = 0; g < G; ++g) acc[g] = 0.0f;
      for (int i = lane; i < d; i += 32) {
        const float x = k[i];
#pragma unroll
        for (int g = 0; g < G; ++g) acc[g] = fmaf(qp[i * G + g], x, acc[g]);
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float s = WarpSum(acc[g]);
        if (lane == 0) {
          p[t * G + g] = s;
          if (window_scores != nullptr && g < group) {
            window_scores[(static_cast<size_t>(h) * group + g) * a.window_tokens + c.first + t] = s;
          }
        }
      }
    }
  }
  __syncthreads();
  ChunkSoftmax<G>(p, c.n, group, red_m, red_l);
  __syncthreads();
  for (int e = threadIdx.x; e < c.n * G; e += blockDim.x) {
    if (e % G >= group) p[e] = 0.0f;  // padding queries contribute nothing
  }
  if (!window) Stage(a.levels[c.level].value_records + row * vl.record_bytes, staging, static_cast<size_t>(c.n) * vl.record_bytes);
  __syncthreads();

  // Weighted values into acc_s [G][d].
  if (!window) {
    const int units = UnitCount(vl);
    const int stripes = kThreads / units;  // units <= head_dim <= kThreads
    const int u = threadIdx.x % units, r = threadIdx.x / units;
    if (r < stripes) {
      const ValueUnit unit = UnitAt(vl, u);
      float acc[4][G];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
#pragma unroll
        for (int g = 0; g < G; ++g) acc[k][g] = 0.0f;
      }
      const uint32_t mask = unit.bits < 16 ? (1u << unit.bits) - 1 : 0;
      const float bias = 0.5f * static_cast<float>(mask);
      for (int t = r; t < c.n; t += stripes) {
        const uint8_t* rec = staging + static_cast<size_t>(t) * vl.record_bytes;
        float w[G];
        const float4* p4 = reinterpret_cast<const float4*>(p + t * G);
#pragma unroll
        for (int v = 0; v < G / 4; ++v) {
          const float4 pv = p4[v];
          w[4 * v + 0] = pv.x;
          w[4 * v + 1] = pv.y;
          w[4 * v + 2] = pv.z;
          w[4 * v + 3] = pv.w;
        }
        if (unit.bits >= 16) {
          float x;
          if (unit.bits == 32) {
            memcpy(&x, rec + unit.byte_offset, 4);
          } else {
            x = HalfBits(rec + unit.byte_offset);
          }
#pragma unroll
          for (int g = 0; g < G; ++g) acc[0][g] = fmaf(w[g], x, acc[0][g]);
        } else {
          const float sc = HalfBits(rec + unit.scale_offset);
#pragma unroll
          for (int g = 0; g < G; ++g) w[g] *= sc;
          const uint32_t byte = rec[unit.byte_offset];
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            if (k < unit.count) {
              const float x = CodeMinus((byte >> (k * unit.bits)) & mask, bias);
#pragma unroll
              for (int g = 0; g < G; ++g) acc[k][g] = fmaf(w[g], x, acc[k][g]);
            }
          }
        }
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if (k < unit.count) {
#pragma unroll
          for (int g = 0; g < G; ++g) {
            if (g < group) atomicAdd(&acc_s[g * d + unit.first + k], acc[k][g]);
          }
        }
      }
    }
  } else {
    const int stripes = kThreads / d;  // d <= kThreads
    const int i = threadIdx.x % d, r = threadIdx.x / d;
    if (r < stripes) {
      float acc[G];
#pragma unroll
      for (int g = 0; g < G; ++g) acc[g] = 0.0f;
      for (int t = r; t < c.n; t += stripes) {
        const float x = a.window_values[(static_cast<size_t>(c.first + t) * a.num_kv_heads + h) * d + i];
#pragma unroll
        for (int g = 0; g < G; ++g) acc[g] = fmaf(p[t * G + g], x, acc[g]);
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (g < group) atomicAdd(&acc_s[g * d + i], acc[g]);
      }
    }
  }
  __syncthreads();

  if (threadIdx.x < group) {
    out[threadIdx.x] = red_m[threadIdx.x];
    out[group + threadIdx.x] = red_l[threadIdx.x];
  }
  for (int e = threadIdx.x; e < group * d; e += blockDim.x) out[2 * group + e] = acc_s[e];
}

// ---- Combine ----------------------------------------------------------------------------------

// Merges the chunks of each query in one pass. Grid (q_heads, ceil(d / 32)): lanes over a slice of
// 32 coefficients, warps over chunks; each thread keeps a running maximum, sum and weighted sums
// (rescaled when the maximum grows, as online softmax does), then warp 0 merges the warps. Writes
// sums [q_heads][2][d] (value coefficients, then the exact window sum) and, from block (qh, 0),
// ml [q_heads][2] (maximum, sum).
__global__ void __launch_bounds__(kThreads) TaleCombineKernel(klr::TaleAttentionArgs a, int chunk, int blocks_per_head,
                                                              const float* partial, float* sums, float* ml) {
  constexpr int kWarps = kThreads / 32;
  const int qh = blockIdx.x;
  const int group = a.num_q_heads / a.num_kv_heads;
  const int h = qh / group, g = qh % group, d = a.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __shared__ float warp_m[kWarps], warp_l[kWarps], warp_c[kWarps][32], warp_e[kWarps][32];
  const size_t stride = 2 * group + static_cast<size_t>(group) * d;
  const float* base = partial + static_cast<size_t>(h) * blocks_per_head * stride;
  const WindowBlocks wb = WindowBlocksOf(Locate(a, h), chunk, a.window_tokens);
  const int i = blockIdx.y * 32 + lane;
  const int col = 2 * group + g * d + (i < d ? i : 0);
  float m = -INFINITY, l = 0.0f, cf = 0.0f, ex = 0.0f;
#pragma unroll 4
  for (int c = warp; c < blocks_per_head; c += kWarps) {
    const float mc = base[c * stride + g];
    const float lc = base[c * stride + group + g];
    const float v = base[c * stride + col];  // garbage for an empty chunk (mc = -inf): never used
    if (mc > -INFINITY) {
      if (mc > m) {
        const float r = __expf(m - mc);  // 0 while m is -inf
        l *= r;
        cf *= r;
        ex *= r;
        m = mc;
      }
      const float f = __expf(mc - m);
      l = fmaf(lc, f, l);
      if (c >= wb.begin && c < wb.end) {
        ex = fmaf(f, v, ex);
      } else {
        cf = fmaf(f, v, cf);
      }
    }
  }
  warp_c[warp][lane] = cf;
  warp_e[warp][lane] = ex;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
  __syncthreads();
  if (warp != 0) return;
  float mt = -INFINITY;
  for (int w = 0; w < kWarps; ++w) mt = fmaxf(mt, warp_m[w]);
  float lt = 0.0f, ct = 0.0f, et = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    if (!(warp_m[w] > -INFINITY)) continue;
    const float f = __expf(warp_m[w] - mt);
    lt = fmaf(warp_l[w], f, lt);
    ct = fmaf(warp_c[w][lane], f, ct);
    et = fmaf(warp_e[w][lane], f, et);
  }
  if (i < d) {
    sums[(static_cast<size_t>(qh) * 2) * d + i] = ct;
    sums[(static_cast<size_t>(qh) * 2 + 1) * d + i] = et;
  }
  if (blockIdx.y == 0 && lane == 0) {
    ml[2 * qh] = mt;
    ml[2 * qh + 1] = lt;
  }
}

// out = (Bv coef + exact) / l. Grid (q_heads, ceil(d / 32)): a block takes 32 output rows, its
// warps a row at a time with lanes along the row (coalesced basis reads); block (qh, 0) also
// adds each window token's softmax weight, averaged over the group, to window_attention.
__global__ void __launch_bounds__(kThreads) TaleProjectOutKernel(klr::TaleAttentionArgs a, const float* sums,
                                                                 const float* ml, const float* window_scores) {
  constexpr int kWarps = kThreads / 32;
  const int qh = blockIdx.x;
  const int group = a.num_q_heads / a.num_kv_heads;
  const int h = qh / group, g = qh % group, d = a.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __shared__ float coef[klr::kTaleMaxHeadDim];
  for (int j = threadIdx.x; j < d; j += blockDim.x) coef[j] = sums[static_cast<size_t>(qh) * 2 * d + j];
  __syncthreads();
  const float* exact = sums + (static_cast<size_t>(qh) * 2 + 1) * d;
  const float m = ml[2 * qh], l = ml[2 * qh + 1];
  const float* bv = a.value_basis + static_cast<size_t>(h) * d * d;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const int row_end = min(d, static_cast<int>(blockIdx.y + 1) * 32);
#pragma unroll 4
  for (int i = blockIdx.y * 32 + warp; i < row_end; i += kWarps) {
    float x = 0.0f;
    for (int j = lane; j < d; j += 32) x = fmaf(bv[i * d + j], coef[j], x);
    x = WarpSum(x);
    if (lane == 0) a.out[static_cast<size_t>(qh) * d + i] = (x + exact[i]) * inv;
  }
  if (blockIdx.y == 0 && a.window_attention != nullptr && window_scores != nullptr) {
    const float* ws = window_scores + (static_cast<size_t>(h) * group + g) * a.window_tokens;
    for (int w = threadIdx.x; w < a.window_tokens; w += blockDim.x) {
      atomicAdd(a.window_attention + static_cast<size_t>(h) * a.window_tokens + w,
                __expf(ws[w] - m) * inv / static_cast<float>(group));
    }
  }
}

// ---- Host side ----------------------------------------------------------------------------------

int GroupTemplate(const klr::TaleAttentionArgs& a) { return a.num_q_heads / a.num_kv_heads <= 4 ? 4 : 8; }

int MaxRecordBytes(const klr::TaleAttentionArgs& a) {
  int bytes = 0;
  for (int l = 0; l < klr::kTaleLevels; ++l) {
    bytes = std::max(bytes, std::max(a.key_layout.levels[l].record_bytes, a.value_layout.levels[l].record_bytes));
  }
  return bytes;
}

struct Plan {
  int chunk = kThreads;
  int staging_bytes = 0;
  size_t smem = 0;
  int blocks_per_head = 1;
};

// The largest chunk (tokens per block, a power of two <= kThreads) whose shared memory fits the
// budget; the staging area is rounded up to 16 bytes so the float arrays after it stay aligned.
Plan MakePlan(const klr::TaleAttentionArgs& a) {
  Plan p;
  const int G = GroupTemplate(a), d = a.head_dim, record = MaxRecordBytes(a);
  for (p.chunk = kThreads;; p.chunk /= 2) {
    p.staging_bytes = (p.chunk * record + 15) / 16 * 16;
    p.smem = p.staging_bytes + sizeof(float) * (static_cast<size_t>(d) * G + static_cast<size_t>(p.chunk) * G +
                                                static_cast<size_t>(G) * d);
    if (p.smem <= kSmemBudget || p.chunk <= 16) break;
  }
  const int64_t window = a.window_tokens > 0 ? a.window_tokens : 0;
  p.blocks_per_head = static_cast<int>(CeilDiv(a.max_head_tokens, p.chunk) + klr::kTaleLevels + CeilDiv(window, p.chunk));
  return p;
}

size_t PartialFloats(const klr::TaleAttentionArgs& a, const Plan& p) {
  const size_t group = static_cast<size_t>(a.num_q_heads / (a.num_kv_heads > 0 ? a.num_kv_heads : 1));
  return static_cast<size_t>(a.num_kv_heads) * p.blocks_per_head * (2 * group + group * a.head_dim);
}

}  // namespace

// Workspace, in floats: partial | window scores [q_heads][window] | projected queries [q_heads][d] |
// combined sums [q_heads][2][d] | maximum and sum [q_heads][2].
size_t TaleAttentionWorkspaceBytesCuda(const klr::TaleAttentionArgs& a) {
  if (a.num_kv_heads < 1 || a.head_dim < 1 || a.max_head_tokens < 0) return 0;
  const size_t q_heads = static_cast<size_t>(a.num_q_heads > 0 ? a.num_q_heads : 0);
  const size_t window = q_heads * (a.window_tokens > 0 ? a.window_tokens : 0);
  return (PartialFloats(a, MakePlan(a)) + window + q_heads * (3 * a.head_dim + 2)) * sizeof(float) + 256;
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
  const Plan plan = MakePlan(a);
  float* partial = static_cast<float*>(workspace);
  float* window_scores = a.window_tokens > 0 ? partial + PartialFloats(a, plan) : nullptr;
  float* qproj = partial + PartialFloats(a, plan) + static_cast<size_t>(a.num_q_heads) * a.window_tokens;
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  if (a.window_attention != nullptr && a.window_tokens > 0) {
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
        a.window_attention, 0, sizeof(float) * a.num_kv_heads * a.window_tokens, stream));
  }
  TaleProjectQueryKernel<<<dim3(a.num_q_heads, (a.head_dim + 31) / 32), kThreads, 0, stream>>>(a, scale, qproj);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const auto partial_kernel = GroupTemplate(a) == 4 ? TalePartialKernel<4> : TalePartialKernel<8>;
  if (plan.smem > 48 * 1024) {
    KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        partial_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem)));
  }
  partial_kernel<<<dim3(plan.blocks_per_head, a.num_kv_heads), kThreads, plan.smem, stream>>>(
      a, scale, plan.chunk, plan.staging_bytes, plan.blocks_per_head, qproj, partial, window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  float* sums = qproj + static_cast<size_t>(a.num_q_heads) * a.head_dim;
  float* ml = sums + static_cast<size_t>(a.num_q_heads) * 2 * a.head_dim;
  TaleCombineKernel<<<dim3(a.num_q_heads, (a.head_dim + 31) / 32), kThreads, 0, stream>>>(
      a, plan.chunk, plan.blocks_per_head, partial, sums, ml);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  TaleProjectOutKernel<<<dim3(a.num_q_heads, (a.head_dim + 31) / 32), kThreads, 0, stream>>>(a, sums, ml, window_scores);
  KVT_LOWRANK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace kvt::gpu::lowrank
