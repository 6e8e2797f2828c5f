// "full" (fp16 resident) and "offload" (fp16 in the host tier, fetched whole on every step).
#include <cstring>

#include "policies/internal/half_rows.h"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class FullLayer final : public LayerState {
 public:
  FullLayer(const kernels::AttentionShape& s, bool offload, LayerContext* ctx)
      : LayerState(s), s_(s), row_(static_cast<int64_t>(s.kv_heads) * s.head_dim), offload_(offload), ctx_(ctx),
        keys_(row_), values_(row_) {}

  Status Append(const float* k, const float* v, int64_t tokens) override {
    keys_.Append(k, tokens);
    values_.Append(v, tokens);
    return Status::Ok();
  }

  Status Select(const float* query, SelectedKv* out) override {
    const int64_t t = keys_.tokens();
    const Half* k = keys_.data();
    const Half* v = values_.data();
    if (offload_) {  // the whole layer crosses "PCIe" (host tier -> working buffer) every step
      work_k_.resize(static_cast<size_t>(t * row_));
      work_v_.resize(work_k_.size());
      const uint64_t bytes = keys_.bytes() + values_.bytes();
      const auto ticket = ctx_->scheduler->Submit(TransferPriority::kDemand, bytes, [&, t] {
        std::memcpy(work_k_.data(), keys_.data(), static_cast<size_t>(t * row_) * sizeof(Half));
        std::memcpy(work_v_.data(), values_.data(), static_cast<size_t>(t * row_) * sizeof(Half));
      }, LayerKind::kOffload);
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

  void Save(ByteWriter& w) const override {
    w.PutVector(std::vector<Half>(keys_.data(), keys_.data() + keys_.tokens() * row_));
    w.PutVector(std::vector<Half>(values_.data(), values_.data() + values_.tokens() * row_));
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
    return Status::Ok();
  }
  int64_t tokens() const override { return keys_.tokens(); }
  uint64_t device_bytes() const override {
    // Offload keeps nothing resident between steps (the working buffer is per step).
    return offload_ ? 0 : keys_.bytes() + values_.bytes();
  }
  uint64_t host_bytes() const override { return offload_ ? keys_.bytes() + values_.bytes() : 0; }

 private:
  kernels::AttentionShape s_;
  int64_t row_;
  bool offload_;
  LayerContext* ctx_;
  policies::internal::HalfRows keys_, values_;
  std::vector<Half> work_k_, work_v_;
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
