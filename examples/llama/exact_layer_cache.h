// ExactLayerCache — the uncompressed reference LayerCache: keeps every key and value in float32
// and computes exact grouped-query attention. The engine's default ("full"/"exact" policy) and the
// oracle the compressed methods are measured against.
// Stored: keys, values [tokens][kv_heads][head_dim] float32 (post-RoPE keys only).
// Threading: one thread at a time (LayerCache contract).
#pragma once

#include <memory>
#include <vector>

#include "policies/layer_cache.h"

namespace kvt::llama {

class ExactLayerCache final : public policies::LayerCache {
 public:
  explicit ExactLayerCache(const policies::LayerShape& shape);

  Status Append(const policies::AppendBatch& batch) override;
  Status Attend(const float* query, float* out) override;
  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override {
    return static_cast<uint64_t>(keys_.size() + values_.size()) * sizeof(float);
  }
  std::string name() const override { return "exact"; }

  // Read access for tests and the prefix store: [tokens][kv_heads][head_dim].
  const std::vector<float>& keys() const { return keys_; }
  const std::vector<float>& values() const { return values_; }

 private:
  policies::LayerShape shape_;
  int64_t tokens_ = 0;
  std::vector<float> keys_, values_;
  std::vector<float> scores_;  // [tokens] scratch
};

std::unique_ptr<policies::LayerCache> MakeExactLayerCache(const policies::LayerShape& shape);

}  // namespace kvt::llama
