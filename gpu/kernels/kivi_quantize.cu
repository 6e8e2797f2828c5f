#include "gpu/kernels/kivi_quantize.cuh"

#include <algorithm>
#include <type_traits>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

using internal::Ld;

struct Params {
  float scale, zero, inv;
  Half scale_h, zero_h;
};

__device__ Params MakeParams(float mn, float mx, int levels) {
  Params p;
  p.scale_h = internal::ToHalf((mx - mn) / static_cast<float>(levels));
  p.zero_h = internal::ToHalf(mn);
  p.scale = Ld(&p.scale_h);
  p.zero = Ld(&p.zero_h);
  p.inv = p.scale > 0.0f ? 1.0f / p.scale : 0.0f;
  return p;
}

// rint then clamp to [0, levels], as the CPU does: the unsigned F2I.RN rounds half to even like
// rintf and saturates (negatives and NaN to 0, +inf to UINT_MAX), so one min finishes the clamp.
__device__ __forceinline__ int QuantizeOne(float x, const Params& p, int levels) {
  const unsigned c = __float2uint_rn(__fmul_rn(__fsub_rn(x, p.zero), p.inv));
  return static_cast<int>(min(c, static_cast<unsigned>(levels)));
}

// One block per (group, head); one thread per channel.
// `words`: each channel's code stream (key_group * bits / 8 bytes) is a multiple of 4 bytes and
// `codes` is 4-byte aligned, so codes are stored a 32-bit word at a time.
__global__ void QuantizeKeysKernel(KiviLayout l, const Half* keys, int64_t token_stride, uint8_t* codes,
                                   Half* scale, Half* zero, bool words) {
  const int64_t i = blockIdx.x;
  const int kvh = l.shape.kv_heads, d = l.shape.head_dim, g = l.key_group, bits = l.bits;
  const int64_t grp = i / kvh, head = i % kvh;
  const Half* base = keys + grp * g * token_stride + head * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float mn = INFINITY, mx = -INFINITY;
    for (int t = 0; t < g; ++t) {
      const float x = Ld(base + t * token_stride + c);
      mn = fminf(mn, x);
      mx = fmaxf(mx, x);
    }
    const Params p = MakeParams(mn, mx, l.levels());
    scale[i * d + c] = p.scale_h;
    zero[i * d + c] = p.zero_h;
    uint8_t* stream = codes + i * l.KeyGroupCodeBytes() + static_cast<int64_t>(c) * g * bits / 8;
    if (words) {  // the channel's stream is a whole number of aligned 32-bit words
      uint32_t word = 0;
      int filled = 0;
      for (int t = 0; t < g; ++t) {
        word |= static_cast<uint32_t>(QuantizeOne(Ld(base + t * token_stride + c), p, l.levels())) << filled;
        filled += bits;
        if (filled == 32) {
          reinterpret_cast<uint32_t*>(stream)[(t * bits) / 32] = word;
          word = 0;
          filled = 0;
        }
      }
      continue;
    }
    const int per_byte = 8 / bits;
    for (int b = 0; b < g * bits / 8; ++b) {
      int byte = 0;
      for (int k = 0; k < per_byte; ++k) {
        byte |= QuantizeOne(Ld(base + (b * per_byte + k) * token_stride + c), p, l.levels()) << (k * bits);
      }
      stream[b] = static_cast<uint8_t>(byte);
    }
  }
}

// One block per (key group, KV head), grid-stride: the group's [key_group][head_dim] tile is staged
// in shared memory with 16-byte loads (all of a thread's loads in flight at once), then one thread
// per pair of channels reads their columns twice (min/max, then codes; one 32-bit shared load per
// token) and writes their code streams a 32-bit word at a time. Needs head_dim % 8 == 0,
// 16-byte-aligned rows (keys aligned, token_stride % 8 == 0), key_group * bits a multiple of 32
// and `codes` 4-byte aligned; dynamic smem key_group * head_dim * 2 bytes.
__global__ void QuantizeKeysTileKernel(KiviLayout l, const Half* keys, int64_t token_stride, int64_t groups,
                                       uint8_t* codes, Half* scale, Half* zero) {
  extern __shared__ uint4 tile4[];
  const __half2* tile = reinterpret_cast<const __half2*>(tile4);  // [key_group][head_dim / 2]
  const int d = l.shape.head_dim, g = l.key_group, kvh = l.shape.kv_heads, bits = l.bits;
  const int vec_per_row = d / 8, pairs = d / 2, per_word = 32 / bits;
  for (int64_t i = blockIdx.x; i < groups * kvh; i += gridDim.x) {  // i = group * kv_heads + head
    const int64_t grp = internal::DivNonNeg(i, kvh);
    const int head = static_cast<int>(i - grp * kvh);
    const Half* base = keys + grp * g * token_stride + head * d;
    __syncthreads();  // the previous tile's readers are done
#pragma unroll 4
    for (int v = threadIdx.x; v < g * vec_per_row; v += blockDim.x) {
      const int t = v / vec_per_row, q = v - t * vec_per_row;
      tile4[v] = *reinterpret_cast<const uint4*>(base + t * token_stride + q * 8);
    }
    __syncthreads();
    for (int c2 = threadIdx.x; c2 < pairs; c2 += blockDim.x) {
      float mn0 = INFINITY, mx0 = -INFINITY, mn1 = INFINITY, mx1 = -INFINITY;
#pragma unroll 8
      for (int t = 0; t < g; ++t) {
        const float2 x = __half22float2(tile[t * pairs + c2]);
        mn0 = fminf(mn0, x.x);
        mx0 = fmaxf(mx0, x.x);
        mn1 = fminf(mn1, x.y);
        mx1 = fmaxf(mx1, x.y);
      }
      const Params p0 = MakeParams(mn0, mx0, l.levels()), p1 = MakeParams(mn1, mx1, l.levels());
      const int c = 2 * c2;
      scale[i * d + c] = p0.scale_h;
      scale[i * d + c + 1] = p1.scale_h;
      zero[i * d + c] = p0.zero_h;
      zero[i * d + c + 1] = p1.zero_h;
      const int64_t stream_words = static_cast<int64_t>(g) * bits / 32;
      uint32_t* stream0 = reinterpret_cast<uint32_t*>(codes + i * l.KeyGroupCodeBytes()) + c * stream_words;
      uint32_t* stream1 = stream0 + stream_words;
      for (int w = 0; w < g / per_word; ++w) {
        uint32_t word0 = 0, word1 = 0;
#pragma unroll 8
        for (int k = 0; k < per_word; ++k) {
          const float2 x = __half22float2(tile[(w * per_word + k) * pairs + c2]);
          word0 |= static_cast<uint32_t>(QuantizeOne(x.x, p0, l.levels())) << (k * bits);
          word1 |= static_cast<uint32_t>(QuantizeOne(x.y, p1, l.levels())) << (k * bits);
        }
        stream0[w] = word0;
        stream1[w] = word1;
      }
    }
  }
}

// The tile kernel's variant for key groups of more than 32 tokens (TailorKV's 1-bit group of 64):
// one thread per (pair of channels, span of 32 tokens) instead of per pair, so the warps per tile
// grow with the tile (the per-pair kernel has two warps for a 1-bit group's 16 KiB of tile and
// leaves the SMs short of warps). Each thread takes its span's min and max as half2 (exact: min and
// max commute with the widening), the `splits` threads of a pair combine them by shuffles, and each
// quantizes its span into its words of both channels' code streams. Tile rows are padded by
// kSplitTileRowPad fp16 and the threads of a pair walk each word starting `stagger` rows apart, so
// the lanes of a warp read distinct banks. Needs what the tile kernel needs, key_group % 32 == 0 and
// splits = key_group / 32 a power of two up to 32; dynamic smem key_group * (head_dim + pad) * 2
// bytes; blockDim = ceil(pairs / (32 / splits)) warps.
constexpr int kSplitTileRowPad = 8;
constexpr int kSplitSpan = 32;

__global__ void QuantizeKeysSplitTileKernel(KiviLayout l, const Half* keys, int64_t token_stride, int64_t groups,
                                            uint8_t* codes, Half* scale, Half* zero) {
  extern __shared__ uint4 tile4[];
  const __half2* tile = reinterpret_cast<const __half2*>(tile4);  // [key_group][row2]
  const int d = l.shape.head_dim, g = l.key_group, kvh = l.shape.kv_heads, bits = l.bits;
  const int vec_per_row = d / 8, row4 = (d + kSplitTileRowPad) / 8, row2 = (d + kSplitTileRowPad) / 2;
  const int pairs = d / 2, per_word = 32 / bits, splits = g / kSplitSpan, pairs_per_warp = 32 / splits;
  const int lane = threadIdx.x & 31;
  const int c2 = (threadIdx.x >> 5) * pairs_per_warp + lane % pairs_per_warp;
  const int split = lane / pairs_per_warp;
  const bool live = c2 < pairs;  // dead lanes still shuffle (on column 0), and store nothing
  const int stagger = splits >= 8 ? 1 : 8 / splits;
  const int64_t stream_words = g / per_word;
  for (int64_t i = blockIdx.x; i < groups * kvh; i += gridDim.x) {  // i = group * kv_heads + head
    const int64_t grp = internal::DivNonNeg(i, kvh);
    const int head = static_cast<int>(i - grp * kvh);
    const Half* base = keys + grp * g * token_stride + head * d;
    __syncthreads();  // the previous tile's readers are done
#pragma unroll 4
    for (int v = threadIdx.x; v < g * vec_per_row; v += blockDim.x) {
      const int t = v / vec_per_row, q = v - t * vec_per_row;
      tile4[t * row4 + q] = *reinterpret_cast<const uint4*>(base + t * token_stride + q * 8);
    }
    __syncthreads();
    const __half2* column = tile + split * kSplitSpan * row2 + (live ? c2 : 0);
    __half2 mn = column[0], mx = mn;
    for (int w0 = 0; w0 < kSplitSpan; w0 += per_word) {
#pragma unroll 8
      for (int k = 0; k < per_word; ++k) {
        const __half2 x = column[(w0 + ((k + split * stagger) & (per_word - 1))) * row2];
        mn = __hmin2(mn, x);
        mx = __hmax2(mx, x);
      }
    }
    for (int o = pairs_per_warp; o < 32; o <<= 1) {
      mn = __hmin2(mn, __shfl_xor_sync(0xffffffffu, mn, o));
      mx = __hmax2(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    }
    if (!live) continue;
    const float2 lo = __half22float2(mn), hi = __half22float2(mx);
    const Params p0 = MakeParams(lo.x, hi.x, l.levels()), p1 = MakeParams(lo.y, hi.y, l.levels());
    const int c = 2 * c2;
    if (split == 0) {
      scale[i * d + c] = p0.scale_h;
      scale[i * d + c + 1] = p1.scale_h;
      zero[i * d + c] = p0.zero_h;
      zero[i * d + c + 1] = p1.zero_h;
    }
    uint32_t* stream0 = reinterpret_cast<uint32_t*>(codes + i * l.KeyGroupCodeBytes()) + c * stream_words +
                        split * (kSplitSpan / per_word);
    for (int w0 = 0; w0 < kSplitSpan; w0 += per_word) {
      uint32_t word0 = 0, word1 = 0;
#pragma unroll 8
      for (int k = 0; k < per_word; ++k) {
        const int t = (k + split * stagger) & (per_word - 1);
        const float2 x = __half22float2(column[(w0 + t) * row2]);
        word0 |= static_cast<uint32_t>(QuantizeOne(x.x, p0, l.levels())) << (t * bits);
        word1 |= static_cast<uint32_t>(QuantizeOne(x.y, p1, l.levels())) << (t * bits);
      }
      stream0[w0 / per_word] = word0;
      stream0[stream_words + w0 / per_word] = word1;
    }
  }
}

// One thread per 8 channels of a (token, head) row, value_group / 8 neighbouring lanes per group:
// coalesced 16-byte loads, the group's min and max by shuffles, and the 8 codes stored as one
// kBits-byte word. Needs 16-byte-aligned rows, value_group / 8 dividing 32 and `codes` 8-aligned.
// Grid (ceil(lanes / blockDim), min(ceil(tokens / 4), 65535)), lanes = kv_heads * head_dim / 8;
// blocks walk runs of 4 tokens by gridDim.y.
template <int kBits>
__global__ void QuantizeValuesVecKernel(KiviLayout l, const Half* values, int64_t token_stride, int64_t n,
                                        uint8_t* codes, Half* scale, Half* zero) {
  using Word = std::conditional_t<kBits == 8, uint64_t, uint32_t>;
  const int d = l.shape.head_dim, lanes_per_row = d / 8, lanes_per_group = l.value_group / 8;
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;  // within a token: head * lanes_per_row + part
  const bool live = idx < l.shape.kv_heads * lanes_per_row;  // whole groups are live or not
  const int head = live ? idx / lanes_per_row : 0;
  const int c0 = (idx - head * lanes_per_row) * 8;
  // kTokens tokens per iteration: their rows' loads are all in flight before any is quantized.
  constexpr int kTokens = 4;
  for (int64_t t0 = kTokens * static_cast<int64_t>(blockIdx.y); t0 < n; t0 += kTokens * static_cast<int64_t>(gridDim.y)) {
    uint4 raw[kTokens];  // 8 fp16 values each, converted one token at a time (registers)
#pragma unroll
    for (int k = 0; k < kTokens; ++k) {
      raw[k] = live && t0 + k < n ? *reinterpret_cast<const uint4*>(values + (t0 + k) * token_stride + head * d + c0)
                                  : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int k = 0; k < kTokens; ++k) {
      const int64_t t = t0 + k;
      float x[8];
      const __half2* h2 = reinterpret_cast<const __half2*>(&raw[k]);
      // min and max in half2 (exact: they commute with the widening), then the two halves.
      const __half2 mn2 = __hmin2(__hmin2(h2[0], h2[1]), __hmin2(h2[2], h2[3]));
      const __half2 mx2 = __hmax2(__hmax2(h2[0], h2[1]), __hmax2(h2[2], h2[3]));
      float mn = fminf(__low2float(mn2), __high2float(mn2)), mx = fmaxf(__low2float(mx2), __high2float(mx2));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __half22float2(h2[e]);
        x[2 * e] = f.x;
        x[2 * e + 1] = f.y;
      }
      for (int o = 1; o < lanes_per_group; o <<= 1) {
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      }
      if (!live || t >= n) continue;  // uniform over a warp for t (the last tokens may be fewer)
      const int64_t row = t * l.shape.kv_heads + head;
      const Params p = MakeParams(mn, mx, l.levels());
      if ((c0 / 8) % lanes_per_group == 0) {
        const int64_t gi = row * l.ValueGroups() + c0 / l.value_group;
        scale[gi] = p.scale_h;
        zero[gi] = p.zero_h;
      }
      Word word = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) word |= static_cast<Word>(QuantizeOne(x[e], p, l.levels())) << (e * kBits);
      uint8_t* out = codes + row * l.ValueTokenCodeBytes() + c0 * kBits / 8;
      if constexpr (kBits == 1) *out = static_cast<uint8_t>(word);
      if constexpr (kBits == 2) *reinterpret_cast<uint16_t*>(out) = static_cast<uint16_t>(word);
      if constexpr (kBits == 4) *reinterpret_cast<uint32_t*>(out) = static_cast<uint32_t>(word);
      if constexpr (kBits == 8) *reinterpret_cast<uint64_t*>(out) = word;
    }
  }
}

// One thread per (token, head, value group).
__global__ void QuantizeValuesKernel(KiviLayout l, const Half* values, int64_t token_stride, int64_t n,
                                     uint8_t* codes, Half* scale, Half* zero) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int ng = l.ValueGroups(), kvh = l.shape.kv_heads, vg = l.value_group, bits = l.bits;
  if (idx >= n * kvh * ng) return;
  const int64_t row = idx / ng;  // token * kvh + head
  const int grp = static_cast<int>(idx % ng);
  const int64_t t = row / kvh, head = row % kvh;
  const Half* x = values + t * token_stride + head * l.shape.head_dim + grp * vg;
  float mn = INFINITY, mx = -INFINITY;
  for (int c = 0; c < vg; ++c) {
    mn = fminf(mn, Ld(x + c));
    mx = fmaxf(mx, Ld(x + c));
  }
  const Params p = MakeParams(mn, mx, l.levels());
  scale[idx] = p.scale_h;
  zero[idx] = p.zero_h;
  uint8_t* stream = codes + row * l.ValueTokenCodeBytes() + static_cast<int64_t>(grp) * vg * bits / 8;
  const int per_byte = 8 / bits;
  for (int b = 0; b < vg * bits / 8; ++b) {
    int byte = 0;
    for (int k = 0; k < per_byte; ++k) byte |= QuantizeOne(Ld(x + b * per_byte + k), p, l.levels()) << (k * bits);
    stream[b] = static_cast<uint8_t>(byte);
  }
}

// One block per (group, head); threads over channels, looping over the group's tokens.
__global__ void DequantizeKeysKernel(KiviLayout l, const uint8_t* codes, const Half* scale,
                                     const Half* zero, float* keys) {
  const int64_t i = blockIdx.x;
  const int kvh = l.shape.kv_heads, d = l.shape.head_dim, g = l.key_group;
  const int64_t grp = i / kvh, head = i % kvh, row = static_cast<int64_t>(kvh) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    const float s = Ld(scale + i * d + c), z = Ld(zero + i * d + c);
    const uint8_t* stream = codes + i * l.KeyGroupCodeBytes() + static_cast<int64_t>(c) * g * l.bits / 8;
    for (int t = 0; t < g; ++t) {
      keys[(grp * g + t) * row + head * d + c] = fmaf(static_cast<float>(internal::Code(stream, t, l.bits)), s, z);
    }
  }
}

__global__ void DequantizeValuesKernel(KiviLayout l, const uint8_t* codes, const Half* scale,
                                       const Half* zero, int64_t n, float* values) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int d = l.shape.head_dim;
  if (idx >= n * l.shape.kv_heads * d) return;
  const int64_t row = idx / d;
  const int c = static_cast<int>(idx % d);
  const int64_t p = row * l.ValueGroups() + c / l.value_group;
  values[idx] = fmaf(static_cast<float>(internal::Code(codes + row * l.ValueTokenCodeBytes(), c, l.bits)),
                     Ld(scale + p), Ld(zero + p));
}

// One thread per 8 neighbouring channels of a (token, head) row: their codes are one kBits-byte
// load, the output two 16-byte stores. Needs head_dim % 8 == 0, value_group % 8 == 0, `values`
// 16-byte aligned and `codes` 8-byte aligned. Grid-stride over n * kv_heads * head_dim / 8 lanes.
template <int kBits>
__global__ void DequantizeValuesVecKernel(KiviLayout l, const uint8_t* codes, const Half* scale, const Half* zero,
                                          int64_t lanes, float* values) {
  using Word = std::conditional_t<kBits == 8, uint64_t, uint32_t>;
  const int lanes_per_row = l.shape.head_dim / 8;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < lanes;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = internal::DivNonNeg(idx, lanes_per_row);
    const int c0 = static_cast<int>(idx - row * lanes_per_row) * 8;
    const int64_t p = row * l.ValueGroups() + c0 / l.value_group;
    const float s = Ld(scale + p), z = Ld(zero + p);
    const uint8_t* in = codes + row * l.ValueTokenCodeBytes() + c0 * kBits / 8;
    Word word;
    if constexpr (kBits == 1) word = *in;
    if constexpr (kBits == 2) word = *reinterpret_cast<const uint16_t*>(in);
    if constexpr (kBits == 4) word = *reinterpret_cast<const uint32_t*>(in);
    if constexpr (kBits == 8) word = *reinterpret_cast<const uint64_t*>(in);
    float x[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      x[e] = fmaf(static_cast<float>(static_cast<uint32_t>(word >> (e * kBits)) & ((1u << kBits) - 1)), s, z);
    }
    float4* out = reinterpret_cast<float4*>(values + row * l.shape.head_dim + c0);
    out[0] = make_float4(x[0], x[1], x[2], x[3]);
    out[1] = make_float4(x[4], x[5], x[6], x[7]);
  }
}

Status Check(const KiviLayout& l, int64_t n, const void* a, const void* b, const void* c, const void* d) {
  KVT_RETURN_IF_ERROR(l.Validate());
  if (n < 0) return InvalidArgument("kivi cuda: negative count");
  if (n > 0 && (!a || !b || !c || !d)) return InvalidArgument("kivi cuda: null buffer");
  return Status::Ok();
}

bool AlignedTo(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

int Threads(int d) { return d < 1024 ? ((d + 31) / 32) * 32 : 1024; }

}  // namespace

Status KiviQuantizeKeysCuda(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                            uint8_t* codes, Half* scale, Half* zero, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(Check(l, groups, keys, codes, scale, zero));
  if (token_stride < static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim) {
    return InvalidArgument("kivi cuda: token_stride smaller than a row");
  }
  if (groups == 0) return Status::Ok();
  const bool words = (l.key_group * l.bits / 8) % 4 == 0 && AlignedTo(codes, 4);
  const int64_t blocks = groups * l.shape.kv_heads;
  const unsigned grid = static_cast<unsigned>(blocks < (1 << 30) ? blocks : (1 << 30));
  const bool tile_rows = words && l.shape.head_dim % 8 == 0 && token_stride % 8 == 0 && AlignedTo(keys, 16);
  const int splits = l.key_group % kSplitSpan == 0 ? l.key_group / kSplitSpan : 0;
  const size_t split_tile_bytes = static_cast<size_t>(l.key_group) * (l.shape.head_dim + kSplitTileRowPad) * 2;
  if (tile_rows && splits > 1 && splits <= 32 && (splits & (splits - 1)) == 0 && split_tile_bytes <= 48 * 1024) {
    const int threads = static_cast<int>(internal::CeilDiv(l.shape.head_dim / 2, 32 / splits)) * 32;
    if (threads <= 1024) {
      QuantizeKeysSplitTileKernel<<<grid, threads, split_tile_bytes, stream>>>(l, keys, token_stride, groups, codes,
                                                                                scale, zero);
      return LaunchStatus("QuantizeKeysSplitTileKernel");
    }
  }
  const size_t tile_bytes = static_cast<size_t>(l.key_group) * l.shape.head_dim * 2;
  if (tile_rows && tile_bytes <= 48 * 1024) {
    QuantizeKeysTileKernel<<<grid, Threads(l.shape.head_dim / 2), tile_bytes, stream>>>(l, keys, token_stride, groups,
                                                                                         codes, scale, zero);
    return LaunchStatus("QuantizeKeysTileKernel");
  }
  QuantizeKeysKernel<<<static_cast<unsigned>(groups * l.shape.kv_heads), Threads(l.shape.head_dim), 0, stream>>>(
      l, keys, token_stride, codes, scale, zero, words);
  return LaunchStatus("QuantizeKeysKernel");
}

Status KiviQuantizeValuesCuda(const KiviLayout& l, const Half* values, int64_t token_stride,
                              int64_t tokens, uint8_t* codes, Half* scale, Half* zero, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(Check(l, tokens, values, codes, scale, zero));
  if (token_stride < static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim) {
    return InvalidArgument("kivi cuda: token_stride smaller than a row");
  }
  const int64_t n = tokens * l.shape.kv_heads * l.ValueGroups();
  if (n == 0) return Status::Ok();
  const int lanes_per_group = l.value_group / 8;
  if (32 % lanes_per_group == 0 && l.shape.head_dim % 8 == 0 && token_stride % 8 == 0 &&
      AlignedTo(values, 16) && AlignedTo(codes, 8)) {
    // A block covers one token's row (rounded up to whole warps, at most 256 lanes): no idle half blocks.
    const int lanes = l.shape.kv_heads * (l.shape.head_dim / 8);
    const int threads = lanes >= 256 ? 256 : static_cast<int>(internal::CeilDiv(lanes, 32) * 32);
    const dim3 blocks(static_cast<unsigned>(internal::CeilDiv(lanes, threads)),
                      static_cast<unsigned>(std::min<int64_t>(internal::CeilDiv(tokens, 4), 65535)));
    switch (l.bits) {
      case 1: QuantizeValuesVecKernel<1><<<blocks, threads, 0, stream>>>(l, values, token_stride, tokens, codes, scale, zero); break;
      case 2: QuantizeValuesVecKernel<2><<<blocks, threads, 0, stream>>>(l, values, token_stride, tokens, codes, scale, zero); break;
      case 4: QuantizeValuesVecKernel<4><<<blocks, threads, 0, stream>>>(l, values, token_stride, tokens, codes, scale, zero); break;
      default: QuantizeValuesVecKernel<8><<<blocks, threads, 0, stream>>>(l, values, token_stride, tokens, codes, scale, zero); break;
    }
    return LaunchStatus("QuantizeValuesVecKernel");
  }
  QuantizeValuesKernel<<<static_cast<unsigned>(internal::CeilDiv(n, 256)), 256, 0, stream>>>(
      l, values, token_stride, tokens, codes, scale, zero);
  return LaunchStatus("QuantizeValuesKernel");
}

Status KiviDequantizeKeysCuda(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                              const Half* zero, int64_t groups, float* keys, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(Check(l, groups, codes, scale, zero, keys));
  if (groups == 0) return Status::Ok();
  DequantizeKeysKernel<<<static_cast<unsigned>(groups * l.shape.kv_heads), Threads(l.shape.head_dim), 0, stream>>>(
      l, codes, scale, zero, keys);
  return LaunchStatus("DequantizeKeysKernel");
}

Status KiviDequantizeValuesCuda(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                                const Half* zero, int64_t tokens, float* values, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(Check(l, tokens, codes, scale, zero, values));
  const int64_t n = tokens * l.shape.kv_heads * l.shape.head_dim;
  if (n == 0) return Status::Ok();
  if (l.shape.head_dim % 8 == 0 && l.value_group % 8 == 0 && AlignedTo(values, 16) && AlignedTo(codes, 8)) {
    const int64_t lanes = n / 8;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(internal::CeilDiv(lanes, 256), 1 << 20));
    switch (l.bits) {
      case 1: DequantizeValuesVecKernel<1><<<blocks, 256, 0, stream>>>(l, codes, scale, zero, lanes, values); break;
      case 2: DequantizeValuesVecKernel<2><<<blocks, 256, 0, stream>>>(l, codes, scale, zero, lanes, values); break;
      case 4: DequantizeValuesVecKernel<4><<<blocks, 256, 0, stream>>>(l, codes, scale, zero, lanes, values); break;
      default: DequantizeValuesVecKernel<8><<<blocks, 256, 0, stream>>>(l, codes, scale, zero, lanes, values); break;
    }
    return LaunchStatus("DequantizeValuesVecKernel");
  }
  DequantizeValuesKernel<<<static_cast<unsigned>(internal::CeilDiv(n, 256)), 256, 0, stream>>>(
      l, codes, scale, zero, tokens, values);
  return LaunchStatus("DequantizeValuesKernel");
}

}  // namespace kvt::gpu
