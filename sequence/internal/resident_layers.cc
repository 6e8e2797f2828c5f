// "full" (fp16 resident) and "offload" (fp16 in the host tier, fetched whole on every step).
// Offload appends are write-back transfers: the rows are converted on the caller's thread and
// copied into the host tier by the scheduler's worker; the step's demand fetch runs after them.
// The host tier lives in the sequence's HostTierMemory (LayerContext::host_memory; maybe the
// client's shared heap): the caller's thread reserves room for the appended rows before anything
// else changes (so a full heap fails the append with nothing lost), and growth — rare, the
// capacity doubles — first settles the write-backs, which are the only other users of the array.
#include <atomic>
#include <cstring>
#include <memory>

#include "host/kernels/convert.h"
#include "sequence/internal/host_tier_array.h"
#include "sequence/internal/layer_state.h"
#include "sequence/internal/write_backs.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class FullLayer final : public LayerState {
 public:
  FullLayer(const kernels::AttentionShape& s, bool offload, LayerContext* ctx)
      : LayerState(s), s_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim), offload_(offload), ctx_(ctx),
        keys_(offload ? ctx->host_memory : ctx->resident_memory),
        values_(offload ? ctx->host_memory : ctx->resident_memory), write_backs_(ctx->scheduler) {}
  ~FullLayer() override { (void)Quiesce(); }

  Status Quiesce() override { return write_backs_.Settle(); }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    KVT_RETURN_IF_ERROR(Reserve(tokens_ + tokens));
    const size_t n = static_cast<size_t>(tokens * row_);
    auto rows = std::make_shared<std::vector<Half>>(2 * n);
    kernels::ConvertToHalf(k, rows->data(), tokens * row_);
    kernels::ConvertToHalf(v, rows->data() + n, tokens * row_);
    if (!offload_) {
      keys_.AppendReserved(rows->data(), n);
      values_.AppendReserved(rows->data() + n, n);
      tokens_ += tokens;
      return Status::Ok();
    }
    const uint64_t bytes = rows->size() * sizeof(Half);
    const auto ticket = ctx_->scheduler->Submit(TransferPriority::kWriteBack, bytes, [this, rows, n] {
      keys_.AppendReserved(rows->data(), n);
      values_.AppendReserved(rows->data() + n, n);
      host_bytes_.store(StoredBytes(), std::memory_order_relaxed);
    }, LayerKind::kOffload);
    write_backs_.Add(ticket, tokens_);
    tokens_ += tokens;
    return Status::Ok();
  }

  Status Select(const float* query, SelectedKv* out) override {
    const int64_t t = tokens_;
    const Half* k = nullptr;
    const Half* v = nullptr;
    if (!offload_) {
      k = keys_.data();
      v = values_.data();
    } else {  // the whole layer crosses "PCIe" (host tier -> working buffer) every step
      work_k_.resize(static_cast<size_t>(t * row_));
      work_v_.resize(work_k_.size());
      const uint64_t bytes = static_cast<uint64_t>(2 * t * row_) * sizeof(Half);
      // The fetch reads every row: the write-backs run first (and are waited first, so their
      // exposed time is theirs, not the fetch's).
      KVT_RETURN_IF_ERROR(write_backs_.Raise(TransferPriority::kDemand));
      const auto ticket = ctx_->scheduler->Submit(TransferPriority::kDemand, bytes, [&, t] {
        std::memcpy(work_k_.data(), keys_.data(), static_cast<size_t>(t * row_) * sizeof(Half));
        std::memcpy(work_v_.data(), values_.data(), static_cast<size_t>(t * row_) * sizeof(Half));
      }, LayerKind::kOffload);
      KVT_RETURN_IF_ERROR(write_backs_.Settle());
      KVT_RETURN_IF_ERROR(ctx_->scheduler->Wait(ticket));
      ctx_->pcie_bytes += bytes;
      ctx_->attention_fetch_bytes += bytes;
      k = work_k_.data();
      v = work_v_.data();
    }
    out->segments.assign(1, kernels::KvSegment<Half>{k, v, t, row_, s_.head_dim});
    out->tokens = t;
    return Status::Ok();
  }

  Status Save(ByteWriter& w) const override {
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.size()));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.size()));
    return Status::Ok();
  }
  Status Load(ByteReader& r) override {
    std::vector<Half> k, v;
    KVT_RETURN_IF_ERROR(r.GetVector(&k));
    KVT_RETURN_IF_ERROR(r.GetVector(&v));
    if (k.size() != v.size() || k.size() % static_cast<size_t>(row_) != 0) return Corruption("full layer image: bad sizes");
    KVT_RETURN_IF_ERROR(Quiesce());
    keys_.Clear();
    values_.Clear();
    tokens_ = 0;
    KVT_RETURN_IF_ERROR(Reserve(static_cast<int64_t>(k.size()) / row_));
    keys_.AppendReserved(k.data(), k.size());
    values_.AppendReserved(v.data(), v.size());
    tokens_ = static_cast<int64_t>(k.size()) / row_;
    host_bytes_.store(offload_ ? StoredBytes() : 0, std::memory_order_relaxed);
    return Status::Ok();
  }
  int64_t tokens() const override { return tokens_; }
  uint64_t device_bytes() const override {
    // Offload keeps nothing resident between steps (the working buffer is per step).
    return offload_ ? 0 : StoredBytes();
  }
  // Offload: what the write-backs done so far hold (the worker updates it).
  uint64_t host_bytes() const override { return host_bytes_.load(std::memory_order_relaxed); }

 private:
  uint64_t StoredBytes() const { return (keys_.size() + values_.size()) * sizeof(Half); }

  // Room for `tokens` tokens in K and V; growth first settles the write-backs (they write the
  // arrays on the worker). RESOURCE_EXHAUSTED when the memory is full: nothing stored changes.
  Status Reserve(int64_t tokens) {
    const size_t need = static_cast<size_t>(tokens * row_);
    if (need <= keys_.capacity() && need <= values_.capacity()) return Status::Ok();
    KVT_RETURN_IF_ERROR(write_backs_.Settle());
    KVT_RETURN_IF_ERROR(keys_.Reserve(need));
    return values_.Reserve(need);
  }

  kernels::AttentionShape s_;
  int64_t row_;
  bool offload_;
  LayerContext* ctx_;
  // [tokens][kv_heads][head_dim]; offload: the host tier, written by the worker
  HostTierArray<Half> keys_, values_;
  std::vector<Half> work_k_, work_v_;
  int64_t tokens_ = 0;  // appended, including those still being written back
  std::atomic<uint64_t> host_bytes_{0};
  WriteBacks write_backs_;
};

}  // namespace

Status LayerState::Attend(const float* query, float* out) {
  KVT_RETURN_IF_ERROR(Select(query, &attend_sel_));
  attend_ws_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, attend_sel_.tokens));
  return kernels::DecodeAttention(shape_, attend_sel_.segments, query, out, attend_ws_);
}

std::unique_ptr<LayerState> NewFullLayer(const kernels::AttentionShape& shape, bool offload, LayerContext* ctx) {
  return std::make_unique<FullLayer>(shape, offload, ctx);
}

}  // namespace kvt::sequence::internal
