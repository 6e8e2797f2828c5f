// Gather of selected token rows per KV head (CPU). CUDA twin: gpu/kernels/gather_rows.cuh, whose
// source may be pinned host memory mapped for the device (TailorKV reads offloaded K/V over PCIe).
//
//   src     token-major: element (t, h, c) at src[t * token_stride + h * head_dim + c], t < src_tokens
//   indices [kv_heads][k] token indices (any order; repeats allowed)
//   dst     head-major [kv_heads][k][head_dim]: dst[h][i] = src[indices[h][i]][h]
// An index outside [0, src_tokens) is INVALID_ARGUMENT here (nothing is written); the CUDA twin,
// which cannot report per element, writes a zero row for it instead.
// Pure; allocates nothing; parallel over heads and rows (oneTBB); blocks until done.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

Status GatherRows(const Half* src, int64_t src_tokens, int64_t token_stride, int kv_heads,
                  int head_dim, const int32_t* indices, int64_t k, Half* dst);

}  // namespace kvt::kernels
