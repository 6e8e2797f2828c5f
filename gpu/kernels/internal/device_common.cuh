// Device helpers shared by the kernels in gpu/kernels/: fp16 access, warp/block reductions, the
// KIVI code extraction and the TopK order key. Included only by .cu files.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "host/kernels/half.h"

namespace kvt::gpu {
using kernels::Half;
}  // namespace kvt::gpu

namespace kvt::gpu::internal {

__device__ __forceinline__ float Ld(const Half* p) {
  return __half2float(*reinterpret_cast<const __half*>(p));
}
__device__ __forceinline__ float Ld(const float* p) { return *p; }
__device__ __forceinline__ Half ToHalf(float f) {
  const __half h = __float2half_rn(f);
  return Half{*reinterpret_cast<const uint16_t*>(&h)};
}

// 8 consecutive fp16 values from a 16-byte-aligned address.
__device__ __forceinline__ void Load8(const Half* p, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 f = __half22float2(h[e]);
    out[2 * e] = f.x;
    out[2 * e + 1] = f.y;
  }
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reductions; `scratch` holds 32 floats; every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return WarpMax(v);
}

// Code i of a little-endian bit stream of `bits`-bit codes (bits in {1, 2, 4, 8}).
__device__ __forceinline__ int Code(const uint8_t* stream, int64_t i, int bits) {
  const int64_t bit = i * bits;
  return (stream[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}

__device__ __forceinline__ uint32_t OrderKey(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// a / b for a >= 0, b > 0: 32-bit division when both fit (a 64-bit one is ~70 instructions).
__device__ __forceinline__ int64_t DivNonNeg(int64_t a, int64_t b) {
  return ((a | b) >> 32) == 0 ? static_cast<int64_t>(static_cast<uint32_t>(a) / static_cast<uint32_t>(b)) : a / b;
}

__host__ __device__ __forceinline__ int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace kvt::gpu::internal
