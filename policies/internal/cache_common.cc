#include "policies/internal/cache_common.h"

#include <string>

namespace kvt::policies::internal {

StatusOr<kernels::AttentionShape> ToAttentionShape(const LayerShape& shape) {
  if (shape.layer < 0 || shape.num_layers <= 0 || shape.layer >= shape.num_layers) {
    return InvalidArgument("layer shape: layer " + std::to_string(shape.layer) + " of " +
                           std::to_string(shape.num_layers));
  }
  if (shape.max_tokens < 0) return InvalidArgument("layer shape: negative max_tokens");
  kernels::AttentionShape s{shape.num_q_heads, shape.num_kv_heads, shape.head_dim};
  KVT_RETURN_IF_ERROR(s.Validate());
  return s;
}

Status CheckAppend(const LayerShape& shape, const AppendBatch& batch, int64_t tokens_so_far) {
  if (batch.tokens < 0) return InvalidArgument("append: negative token count");
  if (batch.tokens == 0) return Status::Ok();
  if (!batch.keys || !batch.values) return InvalidArgument("append: null keys or values");
  if (shape.max_tokens > 0 && tokens_so_far + batch.tokens > shape.max_tokens) {
    return ResourceExhausted("append: " + std::to_string(tokens_so_far + batch.tokens) +
                             " tokens exceed max_tokens " + std::to_string(shape.max_tokens));
  }
  return Status::Ok();
}

Status CheckAttend(const float* query, const float* out, int64_t tokens) {
  if (!query || !out) return InvalidArgument("attend: null query or output");
  if (tokens == 0) return InvalidArgument("attend: the cache is empty");
  return Status::Ok();
}

}  // namespace kvt::policies::internal
