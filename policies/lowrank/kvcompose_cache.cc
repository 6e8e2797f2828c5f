#include "policies/lowrank/kvcompose_cache.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "host/kernels/convert.h"
#include "host/kernels/lowrank/dense_attention.h"
#include "host/kernels/lowrank/observed_attention_scores.h"
#include "policies/lowrank/internal/checks.h"

namespace kvt::policies::lowrank {

namespace klr = kernels::lowrank;

StatusOr<std::unique_ptr<KvComposeCache>> KvComposeCache::Create(
    const LayerShape& shape, const KvComposeOptions& options,
    std::shared_ptr<KvComposePlanner> planner) {
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "kvcompose"));
  if (!(options.ratio > 0.0f && options.ratio <= 1.0f)) {
    return InvalidArgument("kvcompose: ratio must be in (0, 1]");
  }
  return std::unique_ptr<KvComposeCache>(new KvComposeCache(shape, options, std::move(planner)));
}

KvComposeCache::KvComposeCache(const LayerShape& shape, const KvComposeOptions& options,
                               std::shared_ptr<KvComposePlanner> planner)
    : shape_(shape), opt_(options), planner_(std::move(planner)), d_(shape.head_dim),
      kv_(shape.num_kv_heads) {
  planner_layer_ = shape.layer;
  if (planner_ == nullptr) {
    planner_ = std::make_shared<KvComposePlanner>(1, kv_, opt_.ratio, opt_.structured);
    planner_layer_ = 0;
  }
  head_tokens_.assign(kv_, 0);
}

void KvComposeCache::Reserve(int64_t need) {
  if (need <= capacity_) return;
  const int64_t cap = std::max<int64_t>({64, capacity_ * 2, need});
  std::vector<kernels::Half> nk(static_cast<size_t>(kv_) * cap * d_), nv(nk.size());
  std::vector<int32_t> ni(static_cast<size_t>(kv_) * cap);
  for (int h = 0; h < kv_; ++h) {
    const size_t n = static_cast<size_t>(head_tokens_[h]);
    std::copy_n(keys_.data() + h * capacity_ * d_, n * d_, nk.data() + h * cap * d_);
    std::copy_n(values_.data() + h * capacity_ * d_, n * d_, nv.data() + h * cap * d_);
    std::copy_n(token_index_.data() + h * capacity_, n, ni.data() + h * cap);
  }
  keys_.swap(nk);
  values_.swap(nv);
  token_index_.swap(ni);
  capacity_ = cap;
  ++layout_version_;
}

Status KvComposeCache::Append(const AppendBatch& b) {
  KVT_RETURN_IF_ERROR(internal::CheckBatch(b, false, "kvcompose"));
  KVT_RETURN_IF_ERROR(MaybeApply());
  if (b.tokens == 0) return Status::Ok();
  int64_t longest = 0;
  for (int64_t n : head_tokens_) longest = std::max(longest, n);
  Reserve(longest + b.tokens);
  for (int h = 0; h < kv_; ++h) {
    for (int t = 0; t < b.tokens; ++t) {
      const size_t slot = static_cast<size_t>(h) * capacity_ + head_tokens_[h] + t;
      const size_t src = (static_cast<size_t>(t) * kv_ + h) * d_;
      kernels::ConvertToHalf(b.keys + src, keys_.data() + slot * d_, d_);
      kernels::ConvertToHalf(b.values + src, values_.data() + slot * d_, d_);
      token_index_[slot] = static_cast<int32_t>(tokens_ + t);
    }
    head_tokens_[h] += b.tokens;
  }
  tokens_ += b.tokens;
  return Status::Ok();
}

Status KvComposeCache::Compress(const Observation& obs) {
  if (submitted_) return Status::Ok();  // once per sequence
  if (obs.window < 0 || (obs.window > 0 && obs.queries == nullptr)) {
    return InvalidArgument("kvcompose: bad observation");
  }
  const int64_t n = head_tokens_.empty() ? 0 : head_tokens_[0];
  std::vector<float> scores(static_cast<size_t>(kv_) * n, 0.0f);
  if (obs.window > 0 && n > 0) {
    const int w = static_cast<int>(std::min<int64_t>(obs.window, n));
    const float* queries = obs.queries + static_cast<size_t>(obs.window - w) * shape_.num_q_heads * d_;
    // The kernel wants [tokens][kv][d]; the cache is head-major: transpose the prompt once.
    std::vector<float> keys(static_cast<size_t>(n) * kv_ * d_);
    for (int h = 0; h < kv_; ++h) {
      for (int64_t t = 0; t < n; ++t) {
        kernels::ConvertToFloat(keys_.data() + (h * capacity_ + t) * d_, keys.data() + (t * kv_ + h) * d_, d_);
      }
    }
    klr::ObservedAttentionShape s{kv_, shape_.num_q_heads, d_, n, w, 0.0f};
    workspace_.resize(klr::ObservedAttentionScoresWorkspaceBytes(s) / sizeof(float) + 1);
    KVT_RETURN_IF_ERROR(klr::ObservedAttentionScores(s, keys.data(), queries, klr::ObservationReduce::kMax,
                                                     scores.data(), workspace_.data(),
                                                     workspace_.size() * sizeof(float)));
    // Add the mean over KV heads: heads agree on tokens the whole layer relies on.
    for (int64_t t = 0; t < n; ++t) {
      float mean = 0.0f;
      for (int h = 0; h < kv_; ++h) mean += scores[h * n + t];
      mean /= static_cast<float>(kv_);
      for (int h = 0; h < kv_; ++h) scores[h * n + t] += mean;
    }
  }
  scores_ = scores;
  scored_ = n;
  KVT_RETURN_IF_ERROR(planner_->Submit(planner_layer_, scores_, n));
  submitted_ = true;
  return MaybeApply();
}

Status KvComposeCache::MaybeApply() {
  if (!submitted_ || applied_ || !planner_->ready()) return Status::Ok();
  KVT_ASSIGN_OR_RETURN(auto counts, planner_->HeadCounts(planner_layer_));
  const int64_t n = scored_;
  std::vector<kernels::Half> nk(static_cast<size_t>(kv_) * capacity_ * d_), nv(nk.size());
  std::vector<int32_t> ni(static_cast<size_t>(kv_) * capacity_);
  std::vector<int64_t> order(n);
  for (int h = 0; h < kv_; ++h) {
    const int64_t keep = std::min(counts[h], n);
    const float* s = scores_.data() + h * n;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [s](int64_t a, int64_t b) { return s[a] > s[b]; });
    std::sort(order.begin(), order.begin() + keep);  // keep positional order
    int64_t out = 0;
    auto move_token = [&](int64_t src) {
      const size_t from = static_cast<size_t>(h) * capacity_ + src, to = static_cast<size_t>(h) * capacity_ + out;
      std::copy_n(keys_.data() + from * d_, d_, nk.data() + to * d_);
      std::copy_n(values_.data() + from * d_, d_, nv.data() + to * d_);
      ni[to] = token_index_[from];
      ++out;
    };
    for (int64_t i = 0; i < keep; ++i) move_token(order[i]);
    for (int64_t t = n; t < head_tokens_[h]; ++t) move_token(t);  // appended after Compress
    head_tokens_[h] = out;
  }
  keys_.swap(nk);
  values_.swap(nv);
  token_index_.swap(ni);
  scores_.clear();
  scores_.shrink_to_fit();
  applied_ = true;
  ++layout_version_;
  return Status::Ok();
}

Status KvComposeCache::Attend(const float* query, float* out) {
  if (query == nullptr || out == nullptr) return InvalidArgument("kvcompose: null query or output");
  if (tokens_ == 0) return InvalidArgument("kvcompose: Attend on an empty cache");
  KVT_RETURN_IF_ERROR(MaybeApply());
  klr::DenseAttentionShape s{kv_, shape_.num_q_heads, d_, capacity_, 0.0f};
  const size_t bytes = klr::DenseAttentionWorkspaceBytes(s);
  if (workspace_.size() * sizeof(float) < bytes) workspace_.resize(bytes / sizeof(float) + 1);
  static_assert(sizeof(kernels::Half) == sizeof(uint16_t));
  return klr::DenseAttentionF16(s, reinterpret_cast<const uint16_t*>(keys_.data()),
                                reinterpret_cast<const uint16_t*>(values_.data()), head_tokens_.data(),
                                query, out, workspace_.data(), workspace_.size() * sizeof(float));
}

Status KvComposeCache::Unpack(std::vector<kernels::Half> k, std::vector<kernels::Half> v,
                              std::vector<int32_t> idx) {
  if (tokens_ < 0 || tokens_ > INT32_MAX || head_tokens_.size() != static_cast<size_t>(kv_)) {
    return Corruption("kvcompose image: bad token counts");
  }
  int64_t total = 0, longest = 0;
  for (int64_t n : head_tokens_) {
    // Exact until applied: every head holds every token.
    if (n < 0 || n > tokens_ || (!applied_ && n != tokens_)) return Corruption("kvcompose image: bad head counts");
    total += n;
    longest = std::max(longest, n);
  }
  if (idx.size() != static_cast<size_t>(total) || k.size() != idx.size() * d_ || v.size() != k.size()) {
    return Corruption("kvcompose image: sizes disagree with the shape");
  }
  for (int32_t i : idx) {
    if (i < 0 || i >= tokens_) return Corruption("kvcompose image: token index out of range");
  }
  scored_ = applied_ ? 0 : tokens_;  // only read while a plan is pending, which no image holds
  const std::vector<int64_t> counts = head_tokens_;
  std::fill(head_tokens_.begin(), head_tokens_.end(), 0);
  keys_.clear();
  values_.clear();
  token_index_.clear();
  capacity_ = 0;
  Reserve(longest);
  size_t from = 0;
  for (int h = 0; h < kv_; ++h) {
    const size_t to = static_cast<size_t>(h) * capacity_, n = static_cast<size_t>(counts[h]);
    std::copy_n(k.data() + from * d_, n * d_, keys_.data() + to * d_);
    std::copy_n(v.data() + from * d_, n * d_, values_.data() + to * d_);
    std::copy_n(idx.data() + from, n, token_index_.data() + to);
    from += n;
  }
  head_tokens_ = counts;
  ++layout_version_;
  return Status::Ok();
}

int64_t KvComposeCache::kept_tokens() const {
  int64_t s = 0;
  for (int64_t n : head_tokens_) s += n;
  return kv_ > 0 ? s / kv_ : 0;
}

uint64_t KvComposeCache::stored_bytes() const {
  uint64_t s = 0;
  for (int64_t n : head_tokens_) {
    s += static_cast<uint64_t>(n) * (2ull * d_ * sizeof(kernels::Half) + sizeof(int32_t));
  }
  return s;
}

std::vector<int64_t> KvComposeCache::SelectedTokens(int kv_head) const {
  if (kv_head < 0 || kv_head >= kv_) return {};
  const int32_t* idx = token_index_.data() + static_cast<size_t>(kv_head) * capacity_;
  return std::vector<int64_t>(idx, idx + head_tokens_[kv_head]);  // ascending: kept in append order
}

StatusOr<std::vector<std::unique_ptr<LayerCache>>> MakeKvComposeCaches(
    const LayerShape& shape, const KvComposeOptions& options) {
  KVT_RETURN_IF_ERROR(internal::CheckShape(shape, "kvcompose"));
  auto planner = std::make_shared<KvComposePlanner>(shape.num_layers, shape.num_kv_heads, options.ratio,
                                                    options.structured);
  std::vector<std::unique_ptr<LayerCache>> caches;
  for (int l = 0; l < shape.num_layers; ++l) {
    LayerShape s = shape;
    s.layer = l;
    KVT_ASSIGN_OR_RETURN(auto c, KvComposeCache::Create(s, options, planner));
    caches.push_back(std::move(c));
  }
  return caches;
}

}  // namespace kvt::policies::lowrank
