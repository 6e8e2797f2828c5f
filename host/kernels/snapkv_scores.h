// SnapKV prefix-token scores (CPU). CUDA twin: gpu/kernels/snapkv_scores.cuh.
// (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", Sec. 4.1-4.2: the
// attention the last `window` prompt queries pay to each earlier token, summed over the window,
// then max-pooled along tokens so selected tokens keep their neighbours.)
//
// The prompt has `tokens` tokens; the observation window is its last `window` positions, query i
// sitting at position tokens - window + i and attending causally to tokens [0, position]. Scores
// cover the prefix [0, tokens - window):
//   raw[h][t]    = mean over the query group of KV head h of  sum_i softmax_i(q_i . K / sqrt(d))[t]
//   scores[h][t] = max(raw[h][t - pool/2 .. t + pool/2])          (pool odd; 1 disables pooling)
// Pure; allocates nothing (caller workspace); parallel over KV heads; blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

size_t SnapKvWorkspaceFloats(const AttentionShape& shape, int window, int64_t tokens);

//   obs    [window][q_heads][head_dim] (post-RoPE queries)
//   keys   token-major rows `token_stride` elements apart, `tokens` rows
//   scores [kv_heads][tokens - window]
Status SnapKvScores(const AttentionShape& shape, const float* obs, int window, const Half* keys,
                    int64_t tokens, int64_t token_stride, int pool, float* scores,
                    std::span<float> workspace);

}  // namespace kvt::kernels
