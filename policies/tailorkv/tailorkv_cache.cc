#include "policies/tailorkv/tailorkv_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/approx_scores.h"
#include "host/kernels/channel_select.h"
#include "host/kernels/decode_attention.h"
#include "host/kernels/dense_preference.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/topk.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/channel_major_keys.h"
#include "policies/internal/half_rows.h"
#include "policies/inspectable_cache.h"
#include "policies/kivi/kivi_cache.h"

namespace kvt::policies {
namespace {

using kernels::Half;

struct TailorKvConfig {
  int bits = 1;
  std::string mode = "auto";
  float tau = 0.2f;
  float top_frac = 0.05f;
  int obs = 32;
  int budget = 192, sinks = 8, recent = 56;
  int channels = 8;  // already scaled to head_dim
  int group = 64, residual = 128;
};

class TailorKvCache final : public LayerCache, public InspectableCache {
 public:
  TailorKvCache(const LayerShape& layer, const kernels::AttentionShape& s, TailorKvConfig cfg)
      : layer_(layer), shape_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        cfg_(std::move(cfg)), keys_(row_), values_(row_), key_cm_(row_),
        absmax_(static_cast<size_t>(row_), 0.0f) {}

  Status Init() {
    if (cfg_.mode == "dense") return BecomeDense();
    return Status::Ok();  // sparse and auto start by keeping full precision
  }

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    if (dense_) {
      KVT_RETURN_IF_ERROR(dense_->Append(batch));
    } else {
      const int64_t first = keys_.tokens();
      keys_.Append(batch.keys, batch.tokens);
      values_.Append(batch.values, batch.tokens);
      KVT_RETURN_IF_ERROR(kernels::KeyChannelAbsMax(shape_, keys_.row(first), batch.tokens, row_,
                                                    absmax_.data()));
      key_cm_.Append(keys_, first, batch.tokens);
    }
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Compress(const Observation& obs) override {
    if (decided_ || cfg_.mode != "auto" || !obs.queries || obs.window <= 0 || tokens_ == 0) {
      if (!decided_ && tokens_ > 0) prompt_len_ = tokens_, decided_ = true;
      return Status::Ok();
    }
    const int w = static_cast<int>(std::min<int64_t>({cfg_.obs, obs.window, tokens_}));
    const float* q = obs.queries + static_cast<int64_t>(obs.window - w) * shape_.q_heads * shape_.head_dim;
    std::vector<float> ws(kernels::DensePreferenceWorkspaceFloats(shape_, w, tokens_));
    KVT_ASSIGN_OR_RETURN(score_, kernels::DensePreferenceScore(shape_, q, w, keys_.data(), tokens_,
                                                               row_, cfg_.top_frac, ws));
    decided_ = true;
    prompt_len_ = tokens_;
    if (score_ > cfg_.tau) return BecomeDense();
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
    if (dense_) return dense_->Attend(query, out);
    if (!decided_) prompt_len_ = tokens_, decided_ = true;
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    const int64_t cand_begin = cfg_.sinks;
    const int64_t cand_end = prompt_len_ - cfg_.recent;
    const int64_t k = std::min<int64_t>(cfg_.budget - cfg_.sinks - cfg_.recent, cand_end - cand_begin);
    read_tokens_ = tokens_;
    if (prompt_len_ <= cfg_.budget || k <= 0) {
      const kernels::KvSegment<Half> seg{keys_.data(), values_.data(), tokens_, row_, d};
      kept_ = tokens_;
      read_begin_ = read_end_ = 0;  // no gathered range: every token was read
      gathered_ = 0;
      workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, tokens_));
      return kernels::DecodeAttention(shape_, std::span(&seg, 1), query, out, workspace_);
    }
    const int64_t n = cand_end - cand_begin;
    qhat_.resize(row_);
    channels_.resize(static_cast<size_t>(kvh) * cfg_.channels);
    KVT_RETURN_IF_ERROR(kernels::TopChannels(shape_, query, absmax_.data(), cfg_.channels, qhat_.data(),
                                             channels_.data()));
    scores_.resize(kvh * n);
    const kernels::StridedKeys cm{key_cm_.data() + cand_begin, n, 1, d * key_cm_.capacity(), key_cm_.capacity()};
    KVT_RETURN_IF_ERROR(kernels::ApproxScores(kvh, d, qhat_.data(), channels_.data(), cfg_.channels,
                                              cm, scores_.data(), n));
    topk_ws_.resize(kernels::TopKWorkspaceWords(kvh, n));
    idx_.resize(kvh * k);
    KVT_RETURN_IF_ERROR(kernels::TopK(scores_.data(), kvh, n, n, k, idx_.data(), topk_ws_));
    for (auto& i : idx_) i += static_cast<int32_t>(cand_begin);
    gk_.resize(kvh * k * d);
    gv_.resize(gk_.size());
    KVT_RETURN_IF_ERROR(kernels::GatherRows(keys_.data(), tokens_, row_, kvh, d, idx_.data(), k, gk_.data()));
    KVT_RETURN_IF_ERROR(kernels::GatherRows(values_.data(), tokens_, row_, kvh, d, idx_.data(), k, gv_.data()));
    const kernels::KvSegment<Half> segs[3] = {
        {keys_.data(), values_.data(), cand_begin, row_, d},
        {gk_.data(), gv_.data(), k, d, k * d},
        {keys_.row(cand_end), values_.row(cand_end), tokens_ - cand_end, row_, d}};
    kept_ = cand_begin + k + (tokens_ - cand_end);
    read_begin_ = cand_begin;
    read_end_ = cand_end;
    gathered_ = k;
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, kept_));
    return kernels::DecodeAttention(shape_, std::span<const kernels::KvSegment<Half>>(segs, 3), query,
                                    out, workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override {
    if (dense_) return dense_->kept_tokens();
    return kept_ ? kept_ : tokens_;
  }
  uint64_t stored_bytes() const override {
    if (dense_) return dense_->stored_bytes();
    return keys_.bytes() + values_.bytes() + key_cm_.bytes() + absmax_.size() * sizeof(float);
  }
  std::string name() const override { return "tailorkv" + std::to_string(cfg_.bits); }

  bool ReconstructKv(float* keys, float* values) const override {
    const auto* dense = dynamic_cast<const InspectableCache*>(dense_.get());
    return dense != nullptr && dense->ReconstructKv(keys, values);
  }

  std::vector<int64_t> SelectedTokens(int kv_head) const override {
    if (dense_ || read_tokens_ == 0 || kv_head < 0 || kv_head >= shape_.kv_heads) return {};
    std::vector<int64_t> sel;
    sel.reserve(static_cast<size_t>(read_tokens_ - (read_end_ - read_begin_) + gathered_));
    for (int64_t t = 0; t < read_begin_; ++t) sel.push_back(t);  // sinks (or every token)
    const int32_t* g = idx_.data() + static_cast<size_t>(kv_head) * gathered_;
    sel.insert(sel.end(), g, g + gathered_);  // TopK writes ascending indices
    for (int64_t t = read_end_ == 0 ? read_begin_ : read_end_; t < read_tokens_; ++t) sel.push_back(t);
    return sel;
  }

 private:
  Status BecomeDense() {
    kernels::KiviLayout layout{shape_, cfg_.bits, cfg_.group, std::min(cfg_.group, shape_.head_dim)};
    KVT_ASSIGN_OR_RETURN(dense_, NewKiviCache(layer_, layout, cfg_.residual, name()));
    decided_ = true;
    if (keys_.tokens() > 0) {  // move the buffered prompt into the quantized form
      std::vector<float> k(keys_.tokens() * row_), v(k.size());
      kernels::ConvertToFloat(keys_.data(), k.data(), static_cast<int64_t>(k.size()));
      kernels::ConvertToFloat(values_.data(), v.data(), static_cast<int64_t>(v.size()));
      AppendBatch b;
      b.keys = k.data();
      b.values = v.data();
      b.tokens = static_cast<int>(keys_.tokens());
      KVT_RETURN_IF_ERROR(dense_->Append(b));
    }
    keys_ = internal::HalfRows(row_);
    values_ = internal::HalfRows(row_);
    key_cm_.Clear();
    return Status::Ok();
  }

  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  TailorKvConfig cfg_;
  int64_t tokens_ = 0;
  bool decided_ = false;
  int64_t prompt_len_ = 0;
  float score_ = 0.0f;
  std::unique_ptr<LayerCache> dense_;
  // Sparse (and undecided) form.
  internal::HalfRows keys_, values_;  // [tokens][kv_heads][head_dim]
  internal::ChannelMajorKeys key_cm_;  // [kv_heads][head_dim][capacity]
  std::vector<float> absmax_;         // [kv_heads][head_dim]
  int64_t kept_ = 0;
  // What the last sparse Attend read: [0, read_begin_) + idx_[head][0, gathered_) +
  // [read_end_, read_tokens_); read_end_ == 0: everything in [0, read_tokens_).
  int64_t read_tokens_ = 0, read_begin_ = 0, read_end_ = 0, gathered_ = 0;
  std::vector<float> qhat_, scores_, workspace_;
  std::vector<int32_t> channels_, idx_;
  std::vector<uint32_t> topk_ws_;
  std::vector<Half> gk_, gv_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeTailorKvCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  TailorKvConfig c;
  KVT_ASSIGN_OR_RETURN(c.bits, params.Int("bits", 1, 1, 8));
  KVT_ASSIGN_OR_RETURN(c.mode, params.Word("mode", "auto"));
  KVT_ASSIGN_OR_RETURN(c.tau, params.Float("tau", 0.2f, 0.0f, 1.0f));
  KVT_ASSIGN_OR_RETURN(c.top_frac, params.Float("top_frac", 0.05f, 1e-6f, 1.0f));
  KVT_ASSIGN_OR_RETURN(c.obs, params.Int("obs", 32, 1, 4096));
  KVT_ASSIGN_OR_RETURN(c.budget, params.Int("budget", 192, 1, 1 << 24));
  KVT_ASSIGN_OR_RETURN(c.sinks, params.Int("sinks", 8, 0, 1 << 20));
  KVT_ASSIGN_OR_RETURN(c.recent, params.Int("recent", 56, 0, 1 << 20));
  KVT_ASSIGN_OR_RETURN(const int channels, params.Int("channels", 8, 1, 128));
  KVT_ASSIGN_OR_RETURN(c.group, params.Int("group", 64, 8, 1024));
  KVT_ASSIGN_OR_RETURN(c.residual, params.Int("residual", 128, 8, 1 << 20));
  KVT_RETURN_IF_ERROR(params.Finish());
  if (c.mode != "auto" && c.mode != "dense" && c.mode != "sparse") {
    return InvalidArgument("tailorkv: mode must be auto, dense or sparse, got " + c.mode);
  }
  if (c.sinks + c.recent >= c.budget) return InvalidArgument("tailorkv: sinks + recent must be below budget");
  c.channels = std::clamp(channels * s.head_dim / 128, 1, s.head_dim);
  auto cache = std::make_unique<TailorKvCache>(shape, s, c);
  KVT_RETURN_IF_ERROR(cache->Init());
  return std::unique_ptr<LayerCache>(std::move(cache));
}

}  // namespace kvt::policies
