#include "examples/llama/exact_layer_cache.h"

#include <algorithm>
#include <cmath>

#include "examples/llama/ops.h"

namespace kvt::llama {

ExactLayerCache::ExactLayerCache(const policies::LayerShape& shape) : shape_(shape) {
  if (shape.max_tokens > 0) {
    const size_t row = static_cast<size_t>(shape.num_kv_heads) * shape.head_dim;
    keys_.reserve(row * shape.max_tokens);
    values_.reserve(row * shape.max_tokens);
  }
}

Status ExactLayerCache::Append(const policies::AppendBatch& batch) {
  if (batch.tokens < 0 || (batch.tokens > 0 && (batch.keys == nullptr || batch.values == nullptr))) {
    return InvalidArgument("ExactLayerCache::Append: null keys/values or negative token count");
  }
  const size_t n = static_cast<size_t>(batch.tokens) * shape_.num_kv_heads * shape_.head_dim;
  keys_.insert(keys_.end(), batch.keys, batch.keys + n);
  values_.insert(values_.end(), batch.values, batch.values + n);
  tokens_ += batch.tokens;
  return Status::Ok();
}

Status ExactLayerCache::Attend(const float* query, float* out) {
  if (query == nullptr || out == nullptr) return InvalidArgument("ExactLayerCache::Attend: null pointer");
  const int hd = shape_.head_dim, kvh = shape_.num_kv_heads;
  const int group = shape_.num_q_heads / kvh;
  const int64_t n = tokens_;
  const size_t row = static_cast<size_t>(kvh) * hd;
  if (n == 0) {
    std::fill(out, out + static_cast<size_t>(shape_.num_q_heads) * hd, 0.0f);
    return Status::Ok();
  }
  scores_.resize(n);
  const float sqrt_hd = std::sqrt(static_cast<float>(hd));  // divided, as llama2.c does
  for (int h = 0; h < shape_.num_q_heads; ++h) {
    const int kv = h / group;
    const float* q = query + static_cast<size_t>(h) * hd;
    for (int64_t t = 0; t < n; ++t) scores_[t] = ops::Dot(q, keys_.data() + t * row + kv * hd, hd) / sqrt_hd;
    ops::Softmax(scores_.data(), static_cast<int>(n));
    float* o = out + static_cast<size_t>(h) * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t t = 0; t < n; ++t) ops::Axpy(scores_[t], values_.data() + t * row + kv * hd, o, hd);
  }
  return Status::Ok();
}

std::unique_ptr<policies::LayerCache> MakeExactLayerCache(const policies::LayerShape& shape) {
  return std::make_unique<ExactLayerCache>(shape);
}

}  // namespace kvt::llama
