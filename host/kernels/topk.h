// Top-k selection per row (CPU). CUDA twin: gpu/kernels/topk.cuh (radix select, same result).
//
// For each row r: the indices of the k largest of values[r][0..n), ties broken toward the smaller
// index, written to indices[r][0..k) in ascending index order (so gathers read memory forward).
// Values are ordered as IEEE totalOrder on their bits (-0 < +0); NaNs must not occur.
// k must satisfy 0 <= k <= n.
//
// Pure; allocates nothing: `workspace` holds rows * n uint32 (TopKWorkspaceWords); parallel over
// rows (oneTBB); blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"

namespace kvt::kernels {

size_t TopKWorkspaceWords(int64_t rows, int64_t n);

//   values  [rows][n], rows `row_stride` floats apart
//   indices [rows][k]
Status TopK(const float* values, int64_t rows, int64_t n, int64_t row_stride, int64_t k,
            int32_t* indices, std::span<uint32_t> workspace);

// The order key TopK compares: larger float -> larger key. Shared with the CUDA twin.
inline uint32_t TopKOrderKey(uint32_t float_bits) {
  return (float_bits & 0x80000000u) ? ~float_bits : (float_bits | 0x80000000u);
}

}  // namespace kvt::kernels
