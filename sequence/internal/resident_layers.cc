// "full" (fp16 resident) and "offload" (fp16 in the host tier, fetched whole on every step).
// Offload appends are write-back transfers: the rows are converted on the caller's thread and
// copied into the host tier by the scheduler's worker; the step's demand fetch runs after them.
#include <atomic>
#include <cstring>
#include <memory>

#include "policies/internal/half_rows.h"
#include "sequence/internal/layer_state.h"
#include "sequence/internal/write_backs.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class FullLayer final : public LayerState {
 public:
  FullLayer(const kernels::AttentionShape& s, bool offload, LayerContext* ctx)
      : LayerState(s), s_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim), offload_(offload), ctx_(ctx),
        keys_(row_), values_(row_), write_backs_(ctx->scheduler) {}
  ~FullLayer() override { (void)Quiesce(); }

  Status Quiesce() override { return write_backs_.Settle(); }

  Status Append(const float* k, const float* v, int64_t tokens) override {
    if (!offload_) {
      keys_.Append(k, tokens);
      values_.Append(v, tokens);
      tokens_ += tokens;
      return Status::Ok();
    }
    auto rows = std::make_shared<std::vector<Half>>(static_cast<size_t>(2 * tokens * row_));
    kernels::ConvertToHalf(k, rows->data(), tokens * row_);
    kernels::ConvertToHalf(v, rows->data() + tokens * row_, tokens * row_);
    const uint64_t bytes = rows->size() * sizeof(Half);
    const auto ticket = ctx_->scheduler->Submit(TransferPriority::kWriteBack, bytes, [this, rows, tokens] {
      keys_.AppendHalf(rows->data(), tokens);
      values_.AppendHalf(rows->data() + tokens * row_, tokens);
      host_bytes_.store(keys_.bytes() + values_.bytes(), std::memory_order_relaxed);
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
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.tokens() * row_));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.tokens() * row_));
    return Status::Ok();
  }
  Status Load(ByteReader& r) override {
    std::vector<Half> k, v;
    KVT_RETURN_IF_ERROR(r.GetVector(&k));
    KVT_RETURN_IF_ERROR(r.GetVector(&v));
    if (k.size() != v.size() || k.size() % static_cast<size_t>(row_) != 0) return Corruption("full layer image: bad sizes");
    keys_.Clear();
    values_.Clear();
    keys_.AppendHalf(k.data(), static_cast<int64_t>(k.size()) / row_);
    values_.AppendHalf(v.data(), static_cast<int64_t>(v.size()) / row_);
    tokens_ = keys_.tokens();
    host_bytes_.store(offload_ ? keys_.bytes() + values_.bytes() : 0, std::memory_order_relaxed);
    return Status::Ok();
  }
  int64_t tokens() const override { return tokens_; }
  uint64_t device_bytes() const override {
    // Offload keeps nothing resident between steps (the working buffer is per step).
    return offload_ ? 0 : keys_.bytes() + values_.bytes();
  }
  // Offload: what the write-backs done so far hold (the worker updates it).
  uint64_t host_bytes() const override { return host_bytes_.load(std::memory_order_relaxed); }

 private:
  kernels::AttentionShape s_;
  int64_t row_;
  bool offload_;
  LayerContext* ctx_;
  policies::internal::HalfRows keys_, values_;  // offload: the host tier, written by the worker
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
