// ObservedAttentionScores — how much attention each cached token received from the prompt's last
// queries (the observation window). Drives KVCompose's selection and TALE's rank levels.
//
// For KV head h and token t:
//   a_{w,qh}(t) = softmax_t(scale * q_{w,qh} . k_t)   over the tokens query w can see (causal)
//   scores[h][t] = mean over the query heads qh of h's group of  R_w a_{w,qh}(t)
// where R is max over w (KVCompose, eq. "max over observation queries") or the sum over w (TALE's
// accumulated attention). Query w of a window of W sits at position tokens - W + w and sees tokens
// [0, tokens - W + w]; a window longer than the cache is INVALID_ARGUMENT.
//
// Shapes: keys [tokens][kv_heads][head_dim] (post-RoPE, as appended), queries
// [window][q_heads][head_dim], scores [kv_heads][tokens]. Host memory; caller workspace
// (ObservedAttentionScoresWorkspaceBytes); never allocates; heads may run in parallel (oneTBB).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace kvt::kernels::lowrank {

enum class ObservationReduce { kMax, kSum };

struct ObservedAttentionShape {
  int num_kv_heads = 0;
  int num_q_heads = 0;
  int head_dim = 0;
  int64_t tokens = 0;
  int window = 0;
  float scale = 0.0f;  // 0 means 1/sqrt(head_dim)
};

size_t ObservedAttentionScoresWorkspaceBytes(const ObservedAttentionShape& shape);

Status ObservedAttentionScores(const ObservedAttentionShape& shape, const float* keys,
                               const float* queries, ObservationReduce reduce, float* scores,
                               void* workspace, size_t workspace_bytes);

}  // namespace kvt::kernels::lowrank
