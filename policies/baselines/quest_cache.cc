#include "policies/baselines/quest_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/decode_attention.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/quest_pages.h"
#include "host/kernels/topk.h"
#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/half_rows.h"

namespace kvt::policies {
namespace {

using kernels::Half;

class QuestCache final : public LayerCache, public InspectableCache {
 public:
  QuestCache(const LayerShape& layer, const kernels::AttentionShape& s, int budget, int page)
      : layer_(layer), shape_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        budget_(budget), page_(page), keys_(row_), values_(row_) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, keys_.tokens()));
    keys_.Append(batch.keys, batch.tokens);
    values_.Append(batch.values, batch.tokens);
    const int64_t pages = keys_.tokens() / page_;
    if (pages > pages_) {
      page_min_.resize(pages * row_);
      page_max_.resize(pages * row_);
      KVT_RETURN_IF_ERROR(kernels::QuestPageMinMax(shape_, page_, keys_.row(pages_ * page_), row_,
                                                   pages - pages_, page_min_.data() + pages_ * row_,
                                                   page_max_.data() + pages_ * row_));
      pages_ = pages;
    }
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    const int64_t total = keys_.tokens();
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, total));
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    if (total <= budget_) {
      const kernels::KvSegment<Half> seg{keys_.data(), values_.data(), total, row_, d};
      workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, total));
      kept_ = total;
      return kernels::DecodeAttention(shape_, std::span(&seg, 1), query, out, workspace_);
    }
    const int64_t tail = total - pages_ * page_;
    const int64_t k_pages = std::clamp<int64_t>((budget_ - tail) / page_, 1, pages_);
    scores_.resize(kvh * pages_);
    KVT_RETURN_IF_ERROR(kernels::QuestPageScores(shape_, query, page_min_.data(), page_max_.data(),
                                                 pages_, scores_.data()));
    topk_ws_.resize(kernels::TopKWorkspaceWords(kvh, pages_));
    page_idx_.resize(kvh * k_pages);
    KVT_RETURN_IF_ERROR(kernels::TopK(scores_.data(), kvh, pages_, pages_, k_pages, page_idx_.data(), topk_ws_));
    const int64_t k_tokens = k_pages * page_;
    token_idx_.resize(kvh * k_tokens);
    for (int64_t i = 0; i < kvh * k_pages; ++i) {
      for (int t = 0; t < page_; ++t) token_idx_[i * page_ + t] = page_idx_[i] * page_ + t;
    }
    gathered_k_.resize(kvh * k_tokens * d);
    gathered_v_.resize(gathered_k_.size());
    KVT_RETURN_IF_ERROR(kernels::GatherRows(keys_.data(), total, row_, kvh, d, token_idx_.data(),
                                            k_tokens, gathered_k_.data()));
    KVT_RETURN_IF_ERROR(kernels::GatherRows(values_.data(), total, row_, kvh, d, token_idx_.data(),
                                            k_tokens, gathered_v_.data()));
    kernels::KvSegment<Half> segs[2] = {
        {gathered_k_.data(), gathered_v_.data(), k_tokens, d, k_tokens * d},
        {keys_.row(pages_ * page_), values_.row(pages_ * page_), tail, row_, d}};
    kept_ = k_tokens + tail;
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, kept_));
    return kernels::DecodeAttention(shape_, std::span<const kernels::KvSegment<Half>>(segs, 2), query,
                                    out, workspace_);
  }

  int64_t tokens() const override { return keys_.tokens(); }
  // Tokens the last Attend read (Quest keeps everything, but attends to a budget).
  int64_t kept_tokens() const override { return kept_ ? kept_ : keys_.tokens(); }
  uint64_t stored_bytes() const override {
    return keys_.bytes() + values_.bytes() + (page_min_.size() + page_max_.size()) * sizeof(Half);
  }
  std::string name() const override { return "quest"; }

  // The chosen pages' tokens of this head, then the partial tail page; everything under budget.
  std::vector<int64_t> SelectedTokens(int kv_head) const override {
    std::vector<int64_t> t;
    if (kept_ == 0) return t;
    const int64_t total = keys_.tokens(), kvh = shape_.kv_heads;
    if (total <= budget_ || token_idx_.empty()) {
      for (int64_t i = 0; i < kept_; ++i) t.push_back(i);
      return t;
    }
    const int64_t k_tokens = static_cast<int64_t>(token_idx_.size()) / kvh;
    for (int64_t i = 0; i < k_tokens; ++i) t.push_back(token_idx_[kv_head * k_tokens + i]);
    std::sort(t.begin(), t.end());
    for (int64_t i = pages_ * page_; i < total; ++i) t.push_back(i);
    return t;
  }

 private:
  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  int64_t budget_, page_;
  internal::HalfRows keys_, values_;
  std::vector<Half> page_min_, page_max_;  // [pages][kv_heads][head_dim]
  int64_t pages_ = 0, kept_ = 0;
  std::vector<float> scores_, workspace_;
  std::vector<uint32_t> topk_ws_;
  std::vector<int32_t> page_idx_, token_idx_;
  std::vector<Half> gathered_k_, gathered_v_;  // [kv_heads][k_tokens][head_dim]
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeQuestCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_ASSIGN_OR_RETURN(const int budget, params.Int("budget", 2048, 1, 1 << 24));
  KVT_ASSIGN_OR_RETURN(const int page, params.Int("page", 16, 1, 1024));
  KVT_RETURN_IF_ERROR(params.Finish());
  if (budget < page) return InvalidArgument("quest: budget smaller than one page");
  return std::unique_ptr<LayerCache>(new QuestCache(shape, s, budget, page));
}

}  // namespace kvt::policies
