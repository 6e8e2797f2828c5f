#include "policies/baselines/snapkv_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/decode_attention.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/snapkv_scores.h"
#include "host/kernels/topk.h"
#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/half_rows.h"

namespace kvt::policies {
namespace {

using kernels::Half;

class SnapKvCache final : public LayerCache, public InspectableCache {
 public:
  SnapKvCache(const LayerShape& layer, const kernels::AttentionShape& s, int budget, int window, int pool)
      : layer_(layer), shape_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        budget_(budget), window_(window), pool_(pool), keys_(row_), values_(row_) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    keys_.Append(batch.keys, batch.tokens);
    values_.Append(batch.values, batch.tokens);
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Compress(const Observation& obs) override {
    if (selected_ > 0 || !obs.queries || obs.window <= 0) return Status::Ok();
    const int w = std::min(window_, obs.window);
    const int64_t total = keys_.tokens();
    if (total - w <= budget_) return Status::Ok();  // nothing to evict
    const int64_t prefix = total - w;
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    const float* q = obs.queries + static_cast<int64_t>(obs.window - w) * shape_.q_heads * d;
    std::vector<float> scores(kvh * prefix);
    std::vector<float> ws(kernels::SnapKvWorkspaceFloats(shape_, w, total));
    KVT_RETURN_IF_ERROR(kernels::SnapKvScores(shape_, q, w, keys_.data(), total, row_, pool_,
                                              scores.data(), ws));
    std::vector<uint32_t> topk_ws(kernels::TopKWorkspaceWords(kvh, prefix));
    std::vector<int32_t> idx(kvh * budget_);
    KVT_RETURN_IF_ERROR(kernels::TopK(scores.data(), kvh, prefix, prefix, budget_, idx.data(), topk_ws));
    sel_k_.resize(kvh * budget_ * d);
    sel_v_.resize(sel_k_.size());
    KVT_RETURN_IF_ERROR(kernels::GatherRows(keys_.data(), total, row_, kvh, d, idx.data(), budget_, sel_k_.data()));
    KVT_RETURN_IF_ERROR(kernels::GatherRows(values_.data(), total, row_, kvh, d, idx.data(), budget_, sel_v_.data()));
    internal::HalfRows tail_k(row_), tail_v(row_);
    tail_k.AppendHalf(keys_.row(prefix), w);
    tail_v.AppendHalf(values_.row(prefix), w);
    keys_ = std::move(tail_k);
    values_ = std::move(tail_v);
    selected_ = budget_;
    sel_idx_ = std::move(idx);
    window_start_ = prefix;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
    const int d = shape_.head_dim;
    kernels::KvSegment<Half> segs[2];
    int n = 0;
    if (selected_ > 0) segs[n++] = {sel_k_.data(), sel_v_.data(), selected_, d, selected_ * d};
    if (keys_.tokens() > 0) segs[n++] = {keys_.data(), values_.data(), keys_.tokens(), row_, d};
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, kept_tokens()));
    return kernels::DecodeAttention(shape_, std::span<const kernels::KvSegment<Half>>(segs, n), query,
                                    out, workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override { return selected_ + keys_.tokens(); }
  uint64_t stored_bytes() const override {
    return keys_.bytes() + values_.bytes() + (sel_k_.size() + sel_v_.size()) * sizeof(Half);
  }
  std::string name() const override { return "snapkv"; }

  // This head's selected prefix tokens, then the observation window and every decoded token.
  std::vector<int64_t> SelectedTokens(int kv_head) const override {
    std::vector<int64_t> t;
    if (selected_ == 0) {
      for (int64_t i = 0; i < tokens_; ++i) t.push_back(i);
      return t;
    }
    for (int64_t i = 0; i < selected_; ++i) t.push_back(sel_idx_[kv_head * selected_ + i]);
    std::sort(t.begin(), t.end());
    for (int64_t i = window_start_; i < tokens_; ++i) t.push_back(i);
    return t;
  }

 private:
  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  int64_t budget_;
  int window_, pool_;
  int64_t tokens_ = 0;
  internal::HalfRows keys_, values_;   // all tokens before Compress; window + decode tokens after
  std::vector<Half> sel_k_, sel_v_;    // [kv_heads][budget][head_dim] selected prefix tokens
  std::vector<int32_t> sel_idx_;       // [kv_heads][budget] their token indices
  int64_t window_start_ = 0;           // first token kept whole after Compress
  int64_t selected_ = 0;
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeSnapKvCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_ASSIGN_OR_RETURN(const int budget, params.Int("budget", 1024, 1, 1 << 24));
  KVT_ASSIGN_OR_RETURN(const int window, params.Int("window", 32, 1, 4096));
  KVT_ASSIGN_OR_RETURN(const int pool, params.Int("pool", 7, 1, 255));
  KVT_RETURN_IF_ERROR(params.Finish());
  if (pool % 2 == 0) return InvalidArgument("snapkv: pool must be odd");
  return std::unique_ptr<LayerCache>(new SnapKvCache(shape, s, budget, window, pool));
}

}  // namespace kvt::policies
