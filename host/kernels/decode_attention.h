// Decode attention over fp16 or fp32 K/V held in one or more segments (CPU).
// CUDA twin: gpu/kernels/decode_attention.cuh.
//
// One decode step, grouped-query: out[j] = softmax(q[j] . K^T / sqrt(head_dim)) V over the
// concatenation of the segments, for q head j reading KV head j / group. The softmax runs in fp32
// over all segments at once (one max, one sum), so splitting a cache into segments (sinks + ring
// pieces + gathered tokens) changes nothing but the memory it reads.
//
// Segment element (t, h, c) lives at keys[t * token_stride + h * head_stride + c] (values alike),
// so both token-major [tokens][kv_heads][head_dim] caches and head-major [kv_heads][k][head_dim]
// gathered buffers are segments. Every segment has the same token count for every KV head.
//
// Pure; allocates nothing (caller workspace); parallel over KV heads (oneTBB); blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

template <typename T>
struct KvSegment {
  const T* keys = nullptr;
  const T* values = nullptr;
  int64_t tokens = 0;
  int64_t token_stride = 0;  // elements
  int64_t head_stride = 0;   // elements
};

// Floats of workspace DecodeAttention needs for `total_tokens` tokens over all segments.
size_t DecodeAttentionWorkspaceFloats(const AttentionShape& shape, int64_t total_tokens);

//   query [q_heads][head_dim], out [q_heads][head_dim] (float32)
// At least one token in total is required (attention over nothing is INVALID_ARGUMENT).
Status DecodeAttention(const AttentionShape& shape, std::span<const KvSegment<Half>> segments,
                       const float* query, float* out, std::span<float> workspace);
Status DecodeAttention(const AttentionShape& shape, std::span<const KvSegment<float>> segments,
                       const float* query, float* out, std::span<float> workspace);

}  // namespace kvt::kernels
