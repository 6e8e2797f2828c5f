// Decode attention over a KIVI-quantized cache plus its full-precision residual window (CPU),
// without materializing dequantized K or V: key scores are taken on packed codes with a query
// pre-multiplied by the per-channel scales (q.k = sum_c (q_c s_c) code_c + sum_c q_c z_c), softmax
// runs in fp32, and values are accumulated from packed codes with probability-times-scale weights
// plus a zero term. Grouped-query: the codes of a KV head are unpacked once for its whole query
// group. CUDA twin: gpu/kernels/kivi_attention.cuh. Layout and rounding: kivi_layout.h.
//
// Token order (both K and V): quantized tokens first, then the residual ones; K and V may split
// differently (keys are quantized in blocks, values one token at a time), but both must cover the
// same number of tokens.
//
// Pure; allocates nothing (caller workspace); parallel over KV heads (oneTBB); blocks until done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::kernels {

struct KiviCacheView {
  // Quantized keys: tokens [0, key_groups * key_group). Layouts in kivi_layout.h.
  const uint8_t* key_codes = nullptr;
  const Half* key_scale = nullptr;
  const Half* key_zero = nullptr;
  int64_t key_groups = 0;
  // Key residual: the next tokens, [key_residual_tokens][kv_heads][head_dim].
  const Half* key_residual = nullptr;
  int64_t key_residual_tokens = 0;
  // Quantized values: tokens [0, value_tokens).
  const uint8_t* value_codes = nullptr;
  const Half* value_scale = nullptr;
  const Half* value_zero = nullptr;
  int64_t value_tokens = 0;
  // Value residual: a ring of value_ring_capacity rows [capacity][kv_heads][head_dim]; token
  // value_tokens + i lives in row (value_ring_start + i) % value_ring_capacity.
  const Half* value_residual = nullptr;
  int64_t value_residual_tokens = 0;
  int64_t value_ring_start = 0;
  int64_t value_ring_capacity = 0;

  int64_t key_tokens(const KiviLayout& l) const { return key_groups * l.key_group + key_residual_tokens; }
  int64_t value_total() const { return value_tokens + value_residual_tokens; }
};

// Floats of workspace KiviDecodeAttention needs for `tokens` tokens.
size_t KiviAttentionWorkspaceFloats(const KiviLayout& layout, int64_t tokens);

//   query [q_heads][head_dim], out [q_heads][head_dim] (float32)
Status KiviDecodeAttention(const KiviLayout& layout, const KiviCacheView& cache, const float* query,
                           float* out, std::span<float> workspace);

// Checks a view against a layout (shared with the CUDA twin).
Status ValidateKiviCacheView(const KiviLayout& layout, const KiviCacheView& cache);

}  // namespace kvt::kernels
