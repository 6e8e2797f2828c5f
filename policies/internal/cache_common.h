// Checks every LayerCache in policies/ shares: layer shape, append batches, attend arguments.
#pragma once

#include <cstdint>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"
#include "policies/layer_cache.h"

namespace kvt::policies::internal {

StatusOr<kernels::AttentionShape> ToAttentionShape(const LayerShape& shape);

// Non-null buffers for a positive token count, and room under shape.max_tokens (when known).
Status CheckAppend(const LayerShape& shape, const AppendBatch& batch, int64_t tokens_so_far);

Status CheckAttend(const float* query, const float* out, int64_t tokens);

}  // namespace kvt::policies::internal
