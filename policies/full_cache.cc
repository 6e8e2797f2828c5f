#include "policies/full_cache.h"

#include <vector>

#include "host/kernels/decode_attention.h"
#include "policies/internal/cache_common.h"

namespace kvt::policies {
namespace {

class FullCache final : public LayerCache {
 public:
  FullCache(const LayerShape& layer, const kernels::AttentionShape& shape)
      : layer_(layer), shape_(shape), row_(static_cast<int64_t>(shape.kv_heads) * shape.head_dim) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    keys_.insert(keys_.end(), batch.keys, batch.keys + batch.tokens * row_);
    values_.insert(values_.end(), batch.values, batch.values + batch.tokens * row_);
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
    const kernels::KvSegment<float> seg{keys_.data(), values_.data(), tokens_, row_, shape_.head_dim};
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, tokens_));
    return kernels::DecodeAttention(shape_, std::span(&seg, 1), query, out, workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override { return 2 * static_cast<uint64_t>(tokens_) * row_ * sizeof(float); }
  std::string name() const override { return "full"; }

 private:
  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  int64_t tokens_ = 0;
  std::vector<float> keys_, values_;  // [tokens][kv_heads][head_dim]
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeFullCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_RETURN_IF_ERROR(params.Finish());
  return std::unique_ptr<LayerCache>(new FullCache(shape, s));
}

}  // namespace kvt::policies
