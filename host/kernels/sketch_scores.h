// Approximate token scores from a resident low-bit key sketch on the critical channels (CPU).
// CUDA twin: gpu/kernels/sketch_scores.cuh.
//
// The improvement over TailorKV's per-step channel-row fetch (issue 7): instead of copying the
// critical channels' fp16 rows from the host tier every step, score on a KIVI-quantized copy of
// the keys that stays resident (2 bits: 1/8 of the fp16 keys, 1/16 of K+V):
//   scores[h][t - begin] = sum_{i < channels} qhat[h][sel[h][i]] * K'(t, h, sel[h][i])
// for t in [begin, begin + n), K' the dequantized sketch (kivi_layout.h key layout: codes
// [groups][kv_heads][head_dim][key_group * bits / 8], scale/zero [groups][kv_heads][head_dim]).
// Tokens [begin, begin + n) must lie in the quantized groups (< groups * key_group).
// Pure; allocates nothing; parallel over KV heads (oneTBB); blocks until done.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::kernels {

//   qhat [kv_heads][head_dim], selected [kv_heads][channels], scores [kv_heads][score_stride]
Status SketchScores(const KiviLayout& layout, const uint8_t* codes, const Half* scale, const Half* zero,
                    int64_t groups, const float* qhat, const int32_t* selected, int channels,
                    int64_t begin, int64_t n, float* scores, int64_t score_stride);

}  // namespace kvt::kernels
