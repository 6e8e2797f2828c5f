#include "policies/baselines/streaming_llm_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/decode_attention.h"
#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/half_rows.h"

namespace kvt::policies {
namespace {

using kernels::Half;

class StreamingLlmCache final : public LayerCache, public InspectableCache {
 public:
  StreamingLlmCache(const LayerShape& layer, const kernels::AttentionShape& s, int sinks, int recent)
      : layer_(layer), shape_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        sinks_(sinks), recent_(recent), sink_keys_(row_), sink_values_(row_),
        ring_keys_(static_cast<size_t>(recent) * row_), ring_values_(ring_keys_.size()) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    for (int64_t t = 0; t < batch.tokens; ++t) {
      const float* k = batch.keys + t * row_;
      const float* v = batch.values + t * row_;
      if (sink_keys_.tokens() < sinks_) {
        sink_keys_.Append(k, 1);
        sink_values_.Append(v, 1);
        continue;
      }
      // Softmax is order-free, so the ring is attended as stored, oldest slot overwritten first.
      kernels::ConvertToHalf(k, ring_keys_.data() + ring_next_ * row_, row_);
      kernels::ConvertToHalf(v, ring_values_.data() + ring_next_ * row_, row_);
      ring_next_ = (ring_next_ + 1) % recent_;
      ring_count_ = std::min<int64_t>(ring_count_ + 1, recent_);
    }
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
    kernels::KvSegment<Half> segs[2];
    int n = 0;
    if (sink_keys_.tokens() > 0) {
      segs[n++] = {sink_keys_.data(), sink_values_.data(), sink_keys_.tokens(), row_, shape_.head_dim};
    }
    if (ring_count_ > 0) {
      segs[n++] = {ring_keys_.data(), ring_values_.data(), ring_count_, row_, shape_.head_dim};
    }
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, kept_tokens()));
    return kernels::DecodeAttention(shape_, std::span<const kernels::KvSegment<Half>>(segs, n), query,
                                    out, workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override { return sink_keys_.tokens() + ring_count_; }
  uint64_t stored_bytes() const override {
    return 2 * static_cast<uint64_t>(kept_tokens()) * row_ * sizeof(Half);
  }
  std::string name() const override { return "streamingllm"; }

  // The sinks and the most recent ring_count_ tokens, for every head.
  std::vector<int64_t> SelectedTokens(int) const override {
    std::vector<int64_t> t;
    for (int64_t i = 0; i < sink_keys_.tokens(); ++i) t.push_back(i);
    for (int64_t i = tokens_ - ring_count_; i < tokens_; ++i) t.push_back(i);
    return t;
  }

 private:
  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  int sinks_, recent_;
  int64_t tokens_ = 0;
  internal::HalfRows sink_keys_, sink_values_;  // [sinks][kv_heads][head_dim]
  std::vector<Half> ring_keys_, ring_values_;   // [recent][kv_heads][head_dim]
  int64_t ring_next_ = 0, ring_count_ = 0;
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeStreamingLlmCache(MethodParams& params,
                                                            const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_ASSIGN_OR_RETURN(const int sinks, params.Int("sinks", 4, 0, 1 << 20));
  KVT_ASSIGN_OR_RETURN(const int recent, params.Int("recent", 1020, 1, 1 << 24));
  KVT_RETURN_IF_ERROR(params.Finish());
  return std::unique_ptr<LayerCache>(new StreamingLlmCache(shape, s, sinks, recent));
}

}  // namespace kvt::policies
