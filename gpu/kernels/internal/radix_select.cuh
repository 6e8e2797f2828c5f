// Block-wide exact k-th largest by 4 passes of 8-bit radix histograms over order keys.
// All threads of the block must call it; returns the k-th largest key and sets *greater to the
// number of elements strictly above it (so k - *greater of the ties are needed).
#pragma once

#include <cstdint>

#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu::internal {

template <typename KeyAt>
__device__ uint32_t RadixSelect(KeyAt key_at, int64_t n, int64_t k, int64_t* greater) {
  __shared__ uint32_t hist[256];
  __shared__ uint32_t s_prefix, s_mask;
  __shared__ int64_t s_remaining;
  if (threadIdx.x == 0) {
    s_prefix = 0;
    s_mask = 0;
    s_remaining = k;
  }
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    const uint32_t prefix = s_prefix, mask = s_mask;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const uint32_t key = key_at(i);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      int digit = 255;
      for (; digit > 0; --digit) {
        if (above + hist[digit] >= s_remaining) break;
        above += hist[digit];
      }
      s_remaining -= above;
      s_prefix = prefix | (static_cast<uint32_t>(digit) << shift);
      s_mask = mask | (255u << shift);
    }
    __syncthreads();
  }
  const uint32_t threshold = s_prefix;
  *greater = k - s_remaining;
  __syncthreads();
  return threshold;
}

}  // namespace kvt::gpu::internal
