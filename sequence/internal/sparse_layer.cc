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
//
// Appends are write-back transfers: the caller's thread converts the rows, folds them into the
// resident state (channel maxima, sketch, the sinks and the recent window, which attention reads
// from there) and queues the copy into the host tier (K, V, transposed keys) as a write-back on
// the scheduler. Only the worker touches the host tier while write-backs are pending; a transfer
// that reads it raises the write-backs it needs ahead of itself, and the gather of candidate
// tokens waits only for those holding candidates, so the row a step just appended (in the recent
// window) is written back behind that step's compute.
//
// The host tier lives in the sequence's HostTierMemory (LayerContext::host_memory; maybe the
// client's shared heap). An append first reserves room for its rows on the caller's thread, before
// anything else changes: a full heap fails the append with nothing lost. Growth (the capacity
// doubles, so it is rare) moves the arrays, so it first quiesces the layer (its write-backs and
// its prefetch are the only other users of them).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>

#include "host/kernels/approx_scores.h"
#include "host/kernels/channel_select.h"
#include "host/kernels/convert.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/kivi_quantize.h"
#include "host/kernels/sketch_scores.h"
#include "host/kernels/topk.h"
#include "policies/internal/half_rows.h"
#include "sequence/internal/channel_major_host_tier.h"
#include "sequence/internal/host_tier_array.h"
#include "sequence/internal/layer_state.h"
#include "sequence/internal/write_backs.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class SparseLayer final : public LayerState {
 public:
  SparseLayer(const LayerPlan& p, const kernels::AttentionShape& s, int layer, LayerContext* ctx)
      : LayerState(s), p_(p), layer_(layer), ctx_(ctx), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim),
        keys_(ctx->host_memory), values_(ctx->host_memory), key_cm_(row_, ctx->host_memory), absmax_(static_cast<size_t>(row_), 0.0f),
        sketch_{s, p.sketch_bits, p.sketch_group, s.head_dim}, sink_k_(row_), sink_v_(row_), win_k_(row_),
        win_v_(row_), sketch_tail_(row_), write_backs_(ctx->scheduler) {}

  ~SparseLayer() override { (void)Quiesce(); }

  PrefetchBuffer& buffer() { return ctx_->buffers[layer_ % 2]; }

  Status Quiesce() override {
    KVT_RETURN_IF_ERROR(write_backs_.Settle());
    PrefetchBuffer& b = buffer();
    if (b.layer == layer_ && b.pending) {  // wait, but keep the rows for this layer's Select
      b.pending = false;
      return ctx_->scheduler->Wait(b.ticket);
    }
    return Status::Ok();
  }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(ReserveHostTier(tokens_ + tokens));
    // [2][tokens][row]: owned by the write-back job.
    auto rows = std::make_shared<std::vector<Half>>(static_cast<size_t>(2 * tokens * row_));
    Half* hk = rows->data();
    Half* hv = hk + tokens * row_;
    kernels::ConvertToHalf(k, hk, tokens * row_);
    kernels::ConvertToHalf(v, hv, tokens * row_);
    KVT_RETURN_IF_ERROR(kernels::KeyChannelAbsMax(shape_, hk, tokens, row_, absmax_.data()));
    KeepResident(hk, hv, tokens);
    if (p_.scorer == Scorer::kSketch) sketch_tail_.AppendHalf(hk, tokens);
    KVT_RETURN_IF_ERROR(QuantizeSketch());
    const uint64_t bytes = rows->size() * sizeof(Half) + static_cast<uint64_t>(tokens * row_) * sizeof(Half);
    const auto ticket = ctx_->scheduler->Submit(TransferPriority::kWriteBack, bytes, [this, rows, tokens] {
      const int64_t first = static_cast<int64_t>(keys_.size()) / row_;
      const size_t n = static_cast<size_t>(tokens * row_);
      keys_.AppendReserved(rows->data(), n);
      values_.AppendReserved(rows->data() + n, n);
      key_cm_.Write(rows->data(), first, tokens);
      host_bytes_.store(HostTierBytes(), std::memory_order_relaxed);
    }, LayerKind::kSparse);
    write_backs_.Add(ticket, tokens_);
    tokens_ += tokens;
    return Status::Ok();
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
    KVT_RETURN_IF_ERROR(write_backs_.Raise(TransferPriority::kPrefetch));  // the rows of every token so far
    SubmitRows(b, TransferPriority::kPrefetch, tokens_);
    return Status::Ok();
  }

  Status Select(const float* q, SelectedKv* out) override {
    const int d = shape_.head_dim, kvh = shape_.kv_heads;
    const int64_t t = tokens_;
    const int64_t n = Candidates();
    if (n <= p_.gathered()) {  // the budget covers every token: one exact segment, of the host tier
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
    const int64_t end = begin + n;  // candidates are [begin, end); what the host tier must hold
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
        KVT_RETURN_IF_ERROR(write_backs_.RaiseBefore(end, TransferPriority::kDemand));
        SubmitRows(b, TransferPriority::kDemand, end);
        ++ctx_->demand_fetches;
      }
      KVT_RETURN_IF_ERROR(write_backs_.SettleBefore(end));
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
    KVT_RETURN_IF_ERROR(write_backs_.SettleBefore(end));  // the candidates' rows are in the host tier
    Status gather_status;
    const auto ticket = ctx_->scheduler->Submit(TransferPriority::kDemand, bytes, [&, end, k] {
      gather_status = kernels::GatherRows(keys_.data(), end, row_, kvh, d, idx_.data(), k, gk.data());
      if (gather_status.ok()) {
        gather_status = kernels::GatherRows(values_.data(), end, row_, kvh, d, idx_.data(), k, gv.data());
      }
    }, LayerKind::kSparse);
    KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(ticket));
    KVT_RETURN_IF_ERROR(gather_status);
    ctx_->pcie_bytes += bytes;
    ctx_->attention_fetch_bytes += bytes;
    // Sinks and the recent window from their resident copies.
    const int64_t recent_at = t - p_.recent - win_first_;
    out->segments = {{sink_k_.data(), sink_v_.data(), begin, row_, d},
                     {gk.data(), gv.data(), k, d, k * d},
                     {win_k_.row(recent_at), win_v_.row(recent_at), p_.recent, row_, d}};
    out->tokens = begin + k + p_.recent;
    kept_ = out->tokens;
    return Status::Ok();
  }

  Status Save(ByteWriter& w) const override {
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.size()));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.size()));
    w.PutVector(absmax_);
    return Status::Ok();
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
    KVT_RETURN_IF_ERROR(Quiesce());
    keys_.Clear();
    values_.Clear();
    key_cm_.Clear();
    tokens_ = 0;
    KVT_RETURN_IF_ERROR(ReserveHostTier(t));
    keys_.AppendReserved(k.data(), k.size());
    values_.AppendReserved(v.data(), v.size());
    // The transposed copy, the resident windows and the sketch are functions of the keys and
    // values: rebuilt, bit-identical.
    key_cm_.Write(keys_.data(), 0, t);
    host_bytes_.store(HostTierBytes(), std::memory_order_relaxed);
    sink_k_.Clear();
    sink_v_.Clear();
    win_k_.Clear();
    win_v_.Clear();
    win_first_ = 0;
    KeepResident(keys_.data(), values_.data(), t);
    tokens_ = t;
    sketch_codes_.clear();
    sketch_scale_.clear();
    sketch_zero_.clear();
    sketch_groups_ = 0;
    sketch_tail_.Clear();
    if (p_.scorer == Scorer::kSketch) sketch_tail_.AppendHalf(keys_.data(), t);
    return QuantizeSketch();
  }

  int64_t tokens() const override { return tokens_; }
  int64_t kept_tokens() const override { return kept_ ? kept_ : tokens(); }
  // Resident: sinks + recent windows, channel maxima, the sketch (the shared gather and
  // channel-row buffers are counted once per sequence).
  uint64_t device_bytes() const override {
    const int64_t window = std::min<int64_t>(tokens_, p_.sinks + p_.recent);
    return static_cast<uint64_t>(window * row_ * 2) * sizeof(Half) +
           absmax_.size() * sizeof(float) + sketch_codes_.size() +
           (sketch_scale_.size() + sketch_zero_.size()) * sizeof(Half);
  }
  // What the write-backs done so far hold (the worker updates it).
  uint64_t host_bytes() const override { return host_bytes_.load(std::memory_order_relaxed); }

 private:
  int64_t Candidates() const { return tokens_ - p_.sinks - p_.recent; }
  uint64_t HostTierBytes() const { return (keys_.size() + values_.size()) * sizeof(Half) + key_cm_.bytes(); }

  // Room for `tokens` tokens in K, V and the transposed keys (tokens_ of them kept). Growth
  // moves the arrays: the layer's write-backs and prefetch finish first. RESOURCE_EXHAUSTED when
  // the memory is full, with everything stored unchanged.
  Status ReserveHostTier(int64_t tokens) {
    const size_t need = static_cast<size_t>(tokens * row_);
    if (need <= keys_.capacity() && need <= values_.capacity() && tokens <= key_cm_.capacity()) return Status::Ok();
    KVT_RETURN_IF_ERROR(Quiesce());
    KVT_RETURN_IF_ERROR(keys_.Reserve(need));
    KVT_RETURN_IF_ERROR(values_.Reserve(need));
    return key_cm_.Reserve(tokens, tokens_);
  }

  // Folds appended rows (tokens_ is still the count before them) into the resident sinks and
  // recent window. The window holds tokens [win_first_, tokens_): at least the last `recent`, at
  // most 2 * recent between compactions.
  void KeepResident(const Half* k, const Half* v, int64_t tokens) {
    const int64_t to_sinks = std::clamp<int64_t>(p_.sinks - tokens_, 0, tokens);
    sink_k_.AppendHalf(k, to_sinks);
    sink_v_.AppendHalf(v, to_sinks);
    const int64_t r = p_.recent;
    if (tokens >= r) {
      win_k_.Clear();
      win_v_.Clear();
      win_k_.AppendHalf(k + (tokens - r) * row_, r);
      win_v_.AppendHalf(v + (tokens - r) * row_, r);
      win_first_ = tokens_ + tokens - r;
      return;
    }
    win_k_.AppendHalf(k, tokens);
    win_v_.AppendHalf(v, tokens);
    if (win_k_.tokens() > 2 * r) {
      const int64_t drop = win_k_.tokens() - r;
      policies::internal::HalfRows nk(row_), nv(row_);
      nk.AppendHalf(win_k_.row(drop), r);
      nv.AppendHalf(win_v_.row(drop), r);
      win_k_ = std::move(nk);
      win_v_ = std::move(nv);
      win_first_ += drop;
    }
  }

  // Queues the copy of the selected channel rows of tokens [0, t) into `b`. The write-backs of
  // those tokens must have been raised to `priority` (or run) before.
  void SubmitRows(PrefetchBuffer& b, TransferPriority priority, int64_t t) {
    const int ch = p_.channels, d = shape_.head_dim, kvh = shape_.kv_heads;
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

  // Quantizes every completed group of keys in sketch_tail_ into the sketch and drops them from it.
  Status QuantizeSketch() {
    if (p_.scorer != Scorer::kSketch) return Status::Ok();
    const int64_t add = sketch_tail_.tokens() / sketch_.key_group;
    if (add == 0) return Status::Ok();
    const size_t code_off = sketch_codes_.size(), param_off = sketch_scale_.size();
    sketch_codes_.resize(code_off + add * shape_.kv_heads * sketch_.KeyGroupCodeBytes());
    sketch_scale_.resize(param_off + add * shape_.kv_heads * sketch_.KeyGroupParams());
    sketch_zero_.resize(sketch_scale_.size());
    KVT_RETURN_IF_ERROR(kernels::KiviQuantizeKeys(sketch_, sketch_tail_.data(), row_, add,
                                                  sketch_codes_.data() + code_off, sketch_scale_.data() + param_off,
                                                  sketch_zero_.data() + param_off));
    sketch_groups_ += add;
    const int64_t used = add * sketch_.key_group;
    policies::internal::HalfRows rest(row_);
    rest.AppendHalf(sketch_tail_.row(used), sketch_tail_.tokens() - used);
    sketch_tail_ = std::move(rest);
    return Status::Ok();
  }

  LayerPlan p_;
  int layer_;
  LayerContext* ctx_;
  int64_t row_;
  // Host tier: written by write-back jobs on the scheduler's worker; read on this layer's thread
  // only after the write-backs it needs are settled.
  HostTierArray<Half> keys_, values_;  // host tier, [tokens][kv_heads][head_dim]
  ChannelMajorHostTier key_cm_;        // host tier, [kv_heads][head_dim][capacity]
  std::atomic<uint64_t> host_bytes_{0};
  std::vector<float> absmax_;                   // [kv_heads][head_dim]
  kernels::KiviLayout sketch_;
  std::vector<uint8_t> sketch_codes_;
  std::vector<Half> sketch_scale_, sketch_zero_;
  int64_t sketch_groups_ = 0;
  // Resident: the first `sinks` tokens, the recent window (tokens [win_first_, tokens_)), the keys
  // not yet in a complete sketch group.
  policies::internal::HalfRows sink_k_, sink_v_, win_k_, win_v_, sketch_tail_;
  int64_t win_first_ = 0;
  int64_t tokens_ = 0;  // appended, including those still being written back
  WriteBacks write_backs_;
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
