// TaleAttention — TALE's reconstruction-free decode attention (CPU twin of
// gpu/kernels/lowrank/tale_attention.cuh).
//
// Per KV head h with key basis Bk and value basis Bv ([head_dim][head_dim], column j = basis
// vector j), for each query q of the group of h:
//   q' = scale * Bk^T q                                   (projected once per query)
//   s_t = sum_{i < rank(t)} q'_i * ck_{t,i}               (compressed tokens: truncated dot products)
//   s_w = scale * q . k_w                                 (recent window: exact keys)
//   p = softmax(s)
//   out = Bv (sum_t p_t cv_t) + sum_w p_w v_w             (value coefficients accumulated, then one
//                                                          projection back per query)
// Keys and values are never rebuilt per token. Tokens of one head are stored in kTaleLevels buckets
// (one per rank level, see tale_format.h); order inside a bucket is irrelevant to attention.
//
// Shapes:
//   key_basis, value_basis: [kv_heads][head_dim][head_dim]
//   levels[L].key_records:  [kv_heads][capacity_L][key_layout.levels[L].record_bytes]
//   levels[L].value_records:[kv_heads][capacity_L][value_layout.levels[L].record_bytes]
//   levels[L].tokens:       [kv_heads] records in use (<= capacity_L)
//   window_keys/values:     [window_tokens][kv_heads][head_dim] exact (keys post-RoPE)
//   query, out:             [q_heads][head_dim]
// All pointers are host memory. The workspace is caller-provided (TaleAttentionWorkspaceBytes);
// the kernel never allocates. It may run heads in parallel on oneTBB's arena; it blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "host/kernels/lowrank/tale_format.h"

namespace kvt::kernels::lowrank {

struct TaleLevelBuffers {
  const uint8_t* key_records = nullptr;
  const uint8_t* value_records = nullptr;
  const int32_t* tokens = nullptr;  // [kv_heads]
  int64_t capacity = 0;             // records reserved per head
};

struct TaleAttentionArgs {
  int num_kv_heads = 0;
  int num_q_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;  // softmax scale; 0 means 1/sqrt(head_dim)
  TaleLayout key_layout;
  TaleLayout value_layout;
  const float* key_basis = nullptr;
  const float* value_basis = nullptr;
  TaleLevelBuffers levels[kTaleLevels];
  const float* window_keys = nullptr;
  const float* window_values = nullptr;
  int32_t window_tokens = 0;
  // Upper bound over heads of the compressed tokens (sum over levels of tokens[h]); sizes the
  // workspace here and the grid on the GPU.
  int64_t max_head_tokens = 0;
  const float* query = nullptr;
  float* out = nullptr;
  // Optional [kv_heads][window_tokens]: each window token's softmax weight, averaged over the
  // group's queries (TALE accumulates it as token importance while the token is recent).
  float* window_attention = nullptr;
};

// Checks shapes and pointers (INVALID_ARGUMENT on any inconsistency).
Status ValidateTaleAttentionArgs(const TaleAttentionArgs& args);

size_t TaleAttentionWorkspaceBytes(const TaleAttentionArgs& args);

// INVALID_ARGUMENT for bad arguments or a workspace smaller than TaleAttentionWorkspaceBytes, or a
// head holding more than max_head_tokens compressed tokens.
Status TaleAttention(const TaleAttentionArgs& args, void* workspace, size_t workspace_bytes);

}  // namespace kvt::kernels::lowrank
