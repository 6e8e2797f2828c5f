// "sparse" — TailorKV's offloaded layers (Yao et al., "TailorKV", Sec. 4.2), CPU path.
//
// Host tier: fp16 K and V token-major, and the transposed key copy [kv_heads][head_dim][cap]
// whose channel rows the published pipeline fetches. Resident: per-channel max |K|, and with
// scorer=sketch a KIVI-quantized key sketch. Per step, tokens [0, sinks) and the last `recent`
// are always attended; the candidates between them are scored and the top k = budget - sinks -
// recent (per KV head) are gathered from the host tier (a demand transfer). When the candidates
// fit in k, all are taken (attention is then exact). The recent window slides, so generated
// tokens become candidates once they leave it.
//
// scorer=channels: Hint(q̂ of the speculative query) picks the critical channels and queues their
// rows into buffer (layer % 2) as a prefetch; at Select the real query's group mean scores the
// candidates on those channels. Without a hint the real query picks the channels and the rows are
// fetched on demand. scorer=sketch: the real query picks the channels and scores on the resident
// sketch; nothing is fetched to score.
#include <algorithm>
#include <cstring>
#include <limits>

#include "host/kernels/approx_scores.h"
#include "host/kernels/channel_select.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/kivi_quantize.h"
#include "host/kernels/sketch_scores.h"
#include "host/kernels/topk.h"
#include "policies/internal/channel_major_keys.h"
#include "policies/internal/half_rows.h"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class SparseLayer final : public LayerState {
 public:
  SparseLayer(const LayerPlan& p, const kernels::AttentionShape& s, int layer, LayerContext* ctx)
      : LayerState(s), p_(p), layer_(layer), ctx_(ctx), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        keys_(row_), values_(row_), key_cm_(row_), absmax_(static_cast<size_t>(row_), 0.0f),
        sketch_{s, p.sketch_bits, p.sketch_group, s.head_dim} {}

  ~SparseLayer() override { (void)Quiesce(); }

  PrefetchBuffer& buffer() { return ctx_->buffers[layer_ % 2]; }

  Status Quiesce() override {
    PrefetchBuffer& b = buffer();
    if (b.layer == layer_ && b.pending) {  // wait, but keep the rows for this layer's Select
      b.pending = false;
      return ctx_->scheduler->Wait(b.ticket);
    }
    return Status::Ok();
  }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(Quiesce());  // a queued prefetch reads key_cm_, which may reallocate here
    const int64_t first = keys_.tokens();
    keys_.Append(k, tokens);
    values_.Append(v, tokens);
    KVT_RETURN_IF_ERROR(kernels::KeyChannelAbsMax(shape_, keys_.row(first), tokens, row_, absmax_.data()));
    key_cm_.Append(keys_, first, tokens);
    return QuantizeSketch();
  }

  Status Hint(const float* q) override {
    if (p_.scorer != Scorer::kChannels || Candidates() <= p_.gathered()) return Status::Ok();
    PrefetchBuffer& b = buffer();
    if (b.pending) {  // an unconsumed prefetch (of this layer or of layer_ - 2): finish it first
      KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(b.ticket));
      b.pending = false;
    }
    qhat_.resize(static_cast<size_t>(row_));
    b.channels.resize(static_cast<size_t>(shape_.kv_heads) * p_.channels);
    KVT_RETURN_IF_ERROR(kernels::TopChannels(shape_, q, absmax_.data(), p_.channels, qhat_.data(), b.channels.data()));
    SubmitRows(b, TransferPriority::kPrefetch);
    return Status::Ok();
  }

  Status Select(const float* q, SelectedKv* out) override {
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    const int64_t t = keys_.tokens();
    const int64_t n = Candidates();
    if (n <= p_.gathered()) {  // the budget covers every token: one exact segment
      KVT_RETURN_IF_ERROR(Quiesce());
      const uint64_t all = static_cast<uint64_t>(std::max<int64_t>(n, 0)) * row_ * 2 * sizeof(Half);
      ctx_->pcie_bytes += all;
      ctx_->attention_fetch_bytes += all;
      out->segments.assign(1, kernels::KvSegment<Half>{keys_.data(), values_.data(), t, row_, d});
      out->tokens = t;
      kept_ = t;
      return Status::Ok();
    }
    const int64_t begin = p_.sinks, k = p_.gathered();
    qhat_.resize(static_cast<size_t>(row_));
    channels_.resize(static_cast<size_t>(kvh) * p_.channels);
    KVT_RETURN_IF_ERROR(kernels::TopChannels(shape_, q, absmax_.data(), p_.channels, qhat_.data(), channels_.data()));
    scores_.resize(static_cast<size_t>(kvh * n));
    if (p_.scorer == Scorer::kSketch) {
      // Candidates past the last complete sketch group (fewer than sketch_group - recent) have no
      // sketch yet: they are always kept.
      const int64_t scored = std::clamp<int64_t>(sketch_groups_ * sketch_.key_group - begin, 0, n);
      KVT_RETURN_IF_ERROR(kernels::SketchScores(sketch_, sketch_codes_.data(), sketch_scale_.data(),
                                                sketch_zero_.data(), sketch_groups_, qhat_.data(), channels_.data(),
                                                p_.channels, begin, scored, scores_.data(), n));
      for (int h = 0; h < kvh; ++h) {
        std::fill(scores_.begin() + h * n + scored, scores_.begin() + (h + 1) * n, std::numeric_limits<float>::max());
      }
    } else {
      PrefetchBuffer& b = buffer();
      if (b.layer == layer_ && b.tokens >= begin + n) {  // rows hinted earlier (maybe still in flight)
        ++ctx_->prefetch_hits;
      } else {  // no usable hint: the real query's channels, fetched on demand
        if (b.pending) KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(b.ticket));
        b.pending = false;
        b.channels = channels_;
        SubmitRows(b, TransferPriority::kDemand);
        ++ctx_->demand_fetches;
      }
      if (b.pending) KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(b.ticket));
      b.pending = false;
      b.layer = -1;  // consumed; the rows stay readable until the next Hint of layer_ +- 2
      // Rows are [kv_heads][channels][tokens]: present them as a head_dim = channels cache with
      // the identity selection, and q̂ compacted onto the selected channels.
      const int ch = p_.channels;
      qsel_.resize(static_cast<size_t>(kvh) * ch);
      ident_.resize(qsel_.size());
      for (int h = 0; h < kvh; ++h) {
        for (int i = 0; i < ch; ++i) {
          qsel_[h * ch + i] = qhat_[h * d + b.channels[h * ch + i]];
          ident_[h * ch + i] = i;
        }
      }
      const kernels::StridedKeys rows{b.rows.data() + begin, n, 1, ch * b.tokens, b.tokens};
      KVT_RETURN_IF_ERROR(kernels::ApproxScores(kvh, ch, qsel_.data(), ident_.data(), ch, rows, scores_.data(), n));
    }
    topk_ws_.resize(kernels::TopKWorkspaceWords(kvh, n));
    idx_.resize(static_cast<size_t>(kvh * k));
    KVT_RETURN_IF_ERROR(kernels::TopK(scores_.data(), kvh, n, n, k, idx_.data(), topk_ws_));
    for (auto& i : idx_) i += static_cast<int32_t>(begin);
    std::vector<Half>& gk = ctx_->gather_k;
    std::vector<Half>& gv = ctx_->gather_v;
    gk.resize(static_cast<size_t>(kvh * k * d));
    gv.resize(gk.size());
    const uint64_t bytes = 2 * gk.size() * sizeof(Half);
    Status gather_status;
    const auto ticket = ctx_->scheduler->Submit(TransferPriority::kDemand, bytes, [&, t, k] {
      gather_status = kernels::GatherRows(keys_.data(), t, row_, kvh, d, idx_.data(), k, gk.data());
      if (gather_status.ok()) {
        gather_status = kernels::GatherRows(values_.data(), t, row_, kvh, d, idx_.data(), k, gv.data());
      }
    }, LayerKind::kSparse);
    KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(ticket));
    KVT_RETURN_IF_ERROR(gather_status);
    ctx_->pcie_bytes += bytes;
    ctx_->attention_fetch_bytes += bytes;
    const int64_t recent_begin = t - p_.recent;
    out->segments = {{keys_.data(), values_.data(), begin, row_, d},
                     {gk.data(), gv.data(), k, d, k * d},
                     {keys_.row(recent_begin), values_.row(recent_begin), p_.recent, row_, d}};
    out->tokens = begin + k + p_.recent;
    kept_ = out->tokens;
    return Status::Ok();
  }

  void Save(ByteWriter& w) const override {
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.tokens() * row_));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.tokens() * row_));
    w.PutVector(absmax_);
  }
  Status Load(ByteReader& r) override {
    std::vector<Half> k, v;
    KVT_RETURN_IF_ERROR(r.GetVector(&k));
    KVT_RETURN_IF_ERROR(r.GetVector(&v));
    KVT_RETURN_IF_ERROR(r.GetVector(&absmax_));
    if (k.size() != v.size() || k.size() % static_cast<size_t>(row_) != 0 || absmax_.size() != static_cast<size_t>(row_)) {
      return Corruption("sparse layer image: bad sizes");
    }
    const int64_t t = static_cast<int64_t>(k.size()) / row_;
    keys_.Clear();
    values_.Clear();
    keys_.AppendHalf(k.data(), t);
    values_.AppendHalf(v.data(), t);
    // The transposed copy and the sketch are functions of the keys: rebuilt, bit-identical.
    key_cm_.Clear();
    key_cm_.Append(keys_, 0, t);
    sketch_codes_.clear();
    sketch_scale_.clear();
    sketch_zero_.clear();
    sketch_groups_ = 0;
    return QuantizeSketch();
  }

  int64_t tokens() const override { return keys_.tokens(); }
  int64_t kept_tokens() const override { return kept_ ? kept_ : tokens(); }
  // Resident: sinks + recent windows, channel maxima, the sketch (the shared gather and
  // channel-row buffers are counted once per sequence).
  uint64_t device_bytes() const override {
    const int64_t window = std::min<int64_t>(keys_.tokens(), p_.sinks + p_.recent);
    return static_cast<uint64_t>(window * row_ * 2) * sizeof(Half) +
           absmax_.size() * sizeof(float) + sketch_codes_.size() +
           (sketch_scale_.size() + sketch_zero_.size()) * sizeof(Half);
  }
  uint64_t host_bytes() const override { return keys_.bytes() + values_.bytes() + key_cm_.bytes(); }

 private:
  int64_t Candidates() const { return keys_.tokens() - p_.sinks - p_.recent; }

  // Queues the copy of the selected channel rows (all tokens so far) into `b`.
  void SubmitRows(PrefetchBuffer& b, TransferPriority priority) {
    const int ch = p_.channels, d = shape_.head_dim, kvh = shape_.kv_heads;
    const int64_t t = keys_.tokens();
    b.layer = layer_;
    b.tokens = t;
    b.rows.resize(static_cast<size_t>(kvh) * ch * t);
    const uint64_t bytes = b.rows.size() * sizeof(Half);
    b.ticket = ctx_->scheduler->Submit(priority, bytes, [this, &b, ch, d, kvh, t] {
      for (int h = 0; h < kvh; ++h) {
        for (int i = 0; i < ch; ++i) {
          const int c = b.channels[h * ch + i];
          std::memcpy(b.rows.data() + (static_cast<int64_t>(h) * ch + i) * t,
                      key_cm_.data() + (static_cast<int64_t>(h) * d + c) * key_cm_.capacity(), static_cast<size_t>(t) * sizeof(Half));
        }
      }
    }, LayerKind::kSparse);
    b.pending = true;
    ctx_->pcie_bytes += bytes;
  }

  // Quantizes every newly completed group of keys into the sketch.
  Status QuantizeSketch() {
    if (p_.scorer != Scorer::kSketch) return Status::Ok();
    const int64_t g_total = keys_.tokens() / sketch_.key_group;
    if (g_total <= sketch_groups_) return Status::Ok();
    const int64_t add = g_total - sketch_groups_;
    const size_t code_off = sketch_codes_.size(), param_off = sketch_scale_.size();
    sketch_codes_.resize(code_off + add * shape_.kv_heads * sketch_.KeyGroupCodeBytes());
    sketch_scale_.resize(param_off + add * shape_.kv_heads * sketch_.KeyGroupParams());
    sketch_zero_.resize(sketch_scale_.size());
    KVT_RETURN_IF_ERROR(kernels::KiviQuantizeKeys(sketch_, keys_.row(sketch_groups_ * sketch_.key_group), row_, add,
                                                  sketch_codes_.data() + code_off, sketch_scale_.data() + param_off,
                                                  sketch_zero_.data() + param_off));
    sketch_groups_ = g_total;
    return Status::Ok();
  }

  LayerPlan p_;
  int layer_;
  LayerContext* ctx_;
  int64_t row_;
  policies::internal::HalfRows keys_, values_;  // host tier, [tokens][kv_heads][head_dim]
  policies::internal::ChannelMajorKeys key_cm_;  // host tier, [kv_heads][head_dim][capacity]
  std::vector<float> absmax_;                   // [kv_heads][head_dim]
  kernels::KiviLayout sketch_;
  std::vector<uint8_t> sketch_codes_;
  std::vector<Half> sketch_scale_, sketch_zero_;
  int64_t sketch_groups_ = 0;
  int64_t kept_ = 0;
  std::vector<float> qhat_, qsel_, scores_;
  std::vector<int32_t> channels_, ident_, idx_;
  std::vector<uint32_t> topk_ws_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewSparseLayer(const LayerPlan& plan, const kernels::AttentionShape& shape,
                                                     int layer, LayerContext* ctx) {
  if (plan.scorer == Scorer::kSketch) {
    kernels::KiviLayout l{shape, plan.sketch_bits, plan.sketch_group, shape.head_dim};
    KVT_RETURN_IF_ERROR(l.Validate());
  }
  return std::unique_ptr<LayerState>(new SparseLayer(plan, shape, layer, ctx));
}

}  // namespace kvt::sequence::internal
