// DenseAttention / DenseAttentionF16 — exact grouped-query decode attention over a head-major
// cache. The float version serves caches that keep selected tokens (KVCompose); the fp16 version
// is the dense baseline kvt-bench compares TALE against on the CPU (on the GPU the baseline is
// gpu/kernels/decode_attention.cuh over the same cache, checked against this in lowrank_gpu_test).
//
//   out[qh] = softmax(scale * q[qh] K_h^T) V_h,   h = qh / (q_heads / kv_heads)
//
// Shapes: keys, values [kv_heads][capacity][head_dim] (fp16 ones stored as IEEE binary16 bits);
// tokens: one length for all heads, or [kv_heads] per-head lengths so ragged per-head caches work
// (KVCompose's unstructured variant); query, out [q_heads][head_dim]. A head with no tokens
// outputs zeros.
// Host memory; caller's workspace (DenseAttentionWorkspaceBytes); never allocates; may run heads in
// parallel on oneTBB; blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace kvt::kernels::lowrank {

struct DenseAttentionShape {
  int num_kv_heads = 0;
  int num_q_heads = 0;
  int head_dim = 0;
  int64_t capacity = 0;  // token slots per head in keys/values
  float scale = 0.0f;    // 0 means 1/sqrt(head_dim)
};

size_t DenseAttentionWorkspaceBytes(const DenseAttentionShape& shape);

Status DenseAttention(const DenseAttentionShape& shape, const float* keys, const float* values,
                      const int64_t* tokens, const float* query, float* out, void* workspace,
                      size_t workspace_bytes);

Status DenseAttentionF16(const DenseAttentionShape& shape, const uint16_t* keys,
                         const uint16_t* values, int64_t tokens, const float* query, float* out,
                         void* workspace, size_t workspace_bytes);

// Per-head lengths over an fp16 cache (KVCompose keeps its selected tokens in fp16).
Status DenseAttentionF16(const DenseAttentionShape& shape, const uint16_t* keys,
                         const uint16_t* values, const int64_t* tokens, const float* query,
                         float* out, void* workspace, size_t workspace_bytes);

}  // namespace kvt::kernels::lowrank
