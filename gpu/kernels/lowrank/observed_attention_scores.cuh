// ObservedAttentionScoresCuda — CUDA twin of host/kernels/lowrank/observed_attention_scores.h (same
// arguments, same function): per-token attention received from the observation window's queries,
//   scores[h][t] = mean over h's query heads qh of  R_w softmax_t(scale * q_{w,qh} . k_t)
// with R = max or sum over the window, query w seeing tokens [0, tokens - window + w] (causal).
//
// Two kernels: (1) one block per (window query, query head) walks the tokens it sees once, warps
// over tokens with an online softmax, and stores the row's maximum and sum; (2) one warp per
// (token, KV head) holds the key in registers, recomputes each visible logit of the group's
// window queries and reduces the normalised probabilities. Logits are computed twice rather than
// stored (a [window][q_heads][tokens] buffer would be far larger than the cache slice it scores).
//
// Shapes as the CPU twin: keys [tokens][kv_heads][head_dim], queries [window][q_heads][head_dim],
// scores [kv_heads][tokens]; every pointer is device memory, shape values are host values.
// Limits: head_dim <= 256 (UNSUPPORTED). Bad arguments (including a window longer than the cache)
// or a short workspace are INVALID_ARGUMENT and touch neither the device nor the stream. Enqueued
// on `stream`, does not block; never allocates: `workspace` holds
// ObservedAttentionScoresWorkspaceBytesCuda(shape) bytes of device memory.
//
// Performance limits: both passes are CUDA-core dot products (2 x window x q_heads x tokens x
// head_dim FMAs) with keys re-read by every row block of pass 1; fine for observation windows of
// tens of queries, not a prefill-sized window.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "common/status.h"
#include "host/kernels/lowrank/observed_attention_scores.h"

namespace kvt::gpu::lowrank {

size_t ObservedAttentionScoresWorkspaceBytesCuda(
    const kernels::lowrank::ObservedAttentionShape& shape);

Status ObservedAttentionScoresCuda(const kernels::lowrank::ObservedAttentionShape& shape,
                                   const float* keys, const float* queries,
                                   kernels::lowrank::ObservationReduce reduce, float* scores,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::gpu::lowrank
