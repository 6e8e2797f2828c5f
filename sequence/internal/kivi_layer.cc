// "kivi" — TailorKV's dense layers: KIVI codes resident (keys per channel over `group` tokens,
// values per token), the last `residual` tokens fp16: policies/internal/kivi_store.h, the same
// store policies/kivi uses, saved and loaded bit for bit when a sequence is suspended.
#include <algorithm>

#include "host/kernels/convert.h"
#include "policies/internal/kivi_store.h"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class KiviLayer final : public LayerState {
 public:
  KiviLayer(const kernels::KiviLayout& l, int residual)
      : LayerState(l.shape), store_(l, residual), row_(static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim) {}

  Status Append(const float* keys, const float* values, int64_t tokens) override {
    return store_.Append(keys, values, tokens);
  }

  Status Attend(const float* query, float* out) override { return store_.Attend(query, out, attend_ws_); }

  // Dequantized K/V (fp16) for an engine running its own kernel.
  Status Select(const float* query, SelectedKv* out) override {
    const int64_t tokens = store_.tokens();
    std::vector<float> k(static_cast<size_t>(tokens * row_)), v(k.size());
    KVT_RETURN_IF_ERROR(store_.Reconstruct(k.data(), v.data()));
    sel_k_.resize(k.size());
    sel_v_.resize(v.size());
    kernels::ConvertToHalf(k.data(), sel_k_.data(), static_cast<int64_t>(k.size()));
    kernels::ConvertToHalf(v.data(), sel_v_.data(), static_cast<int64_t>(v.size()));
    out->segments.assign(1, kernels::KvSegment<Half>{sel_k_.data(), sel_v_.data(), tokens, row_, shape_.head_dim});
    out->tokens = tokens;
    return Status::Ok();
  }

  Status Save(ByteWriter& w) const override {
    store_.Save(w);
    return Status::Ok();
  }
  Status Load(ByteReader& r) override { return store_.Load(r); }

  int64_t tokens() const override { return store_.tokens(); }
  uint64_t device_bytes() const override { return store_.quantized_bytes() + store_.window_bytes(); }

 private:
  policies::internal::KiviStore store_;
  int64_t row_;
  std::vector<Half> sel_k_, sel_v_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewKiviLayer(const LayerPlan& plan, const kernels::AttentionShape& shape) {
  kernels::KiviLayout layout{shape, plan.bits, plan.group, std::min(plan.group, shape.head_dim)};
  KVT_RETURN_IF_ERROR(policies::internal::KiviStore::CheckConfig(layout, plan.residual));
  return std::unique_ptr<LayerState>(new KiviLayer(layout, plan.residual));
}

}  // namespace kvt::sequence::internal
