// TailorKV approximate token scores on the critical channels only (CPU).
// CUDA twin: gpu/kernels/approx_scores.cuh.
//
//   scores[h][t] = sum_{i < channels} qhat[h][sel[h][i]] * K(t, h, sel[h][i])   for t < tokens
// where K(t, h, c) = keys[t * token_stride + h * head_stride + c * channel_stride]. A channel-major
// store (token_stride 1) is read as `channels` contiguous rows per head — the rows TailorKV
// prefetches; a token-major cache works too, just slower.
// Pure; allocates nothing; parallel over heads and token blocks (oneTBB); blocks until done.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

struct StridedKeys {
  const Half* keys = nullptr;
  int64_t tokens = 0;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
  int64_t channel_stride = 0;
};

//   qhat [kv_heads][head_dim], selected [kv_heads][channels], scores [kv_heads][score_stride]
Status ApproxScores(int kv_heads, int head_dim, const float* qhat, const int32_t* selected,
                    int channels, const StridedKeys& keys, float* scores, int64_t score_stride);

}  // namespace kvt::kernels
