// "kivi" — TailorKV's dense layers: KIVI codes resident (keys per channel over `group` tokens,
// values per token), the last `residual` tokens fp16. Same storage rules as policies/kivi (keys
// quantized in blocks of `residual`, values one at a time as they leave the ring), kept here with
// explicit state so a suspended sequence serializes it bit for bit.
#include <algorithm>

#include "host/kernels/convert.h"
#include "host/kernels/kivi_attention.h"
#include "host/kernels/kivi_quantize.h"
#include "sequence/internal/layer_state.h"

namespace kvt::sequence::internal {
namespace {

using kernels::Half;

class KiviLayer final : public LayerState {
 public:
  KiviLayer(const kernels::KiviLayout& l, int residual)
      : LayerState(l.shape), l_(l), residual_(residual), row_(static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim),
        key_residual_(static_cast<size_t>(residual * row_)), value_ring_(static_cast<size_t>(residual * row_)) {}

  Status Append(const float* keys, const float* values, int64_t tokens) override {
    std::vector<Half> k(static_cast<size_t>(tokens * row_)), v(k.size());
    kernels::ConvertToHalf(keys, k.data(), tokens * row_);
    kernels::ConvertToHalf(values, v.data(), tokens * row_);
    for (int64_t t = 0; t < tokens; ++t) {
      KVT_RETURN_IF_ERROR(PushKey(k.data() + t * row_));
      KVT_RETURN_IF_ERROR(PushValue(v.data() + t * row_));
    }
    tokens_ += tokens;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    kernels::KiviCacheView view;
    view.key_codes = key_codes_.data();
    view.key_scale = key_scale_.data();
    view.key_zero = key_zero_.data();
    view.key_groups = key_groups_;
    view.key_residual = key_residual_.data();
    view.key_residual_tokens = key_residual_count_;
    view.value_codes = value_codes_.data();
    view.value_scale = value_scale_.data();
    view.value_zero = value_zero_.data();
    view.value_tokens = value_tokens_;
    view.value_residual = value_ring_.data();
    view.value_residual_tokens = ring_count_;
    view.value_ring_start = ring_start_;
    view.value_ring_capacity = residual_;
    attend_ws_.resize(kernels::KiviAttentionWorkspaceFloats(l_, tokens_));
    return kernels::KiviDecodeAttention(l_, view, query, out, attend_ws_);
  }

  // Dequantized K/V (fp16) for an engine running its own kernel.
  Status Select(const float* query, SelectedKv* out) override {
    std::vector<float> k(static_cast<size_t>(tokens_ * row_)), v(k.size());
    const int64_t qk = key_groups_ * l_.key_group;
    if (key_groups_ > 0) {
      KVT_RETURN_IF_ERROR(kernels::KiviDequantizeKeys(l_, key_codes_.data(), key_scale_.data(), key_zero_.data(),
                                                      key_groups_, k.data()));
    }
    kernels::ConvertToFloat(key_residual_.data(), k.data() + qk * row_, key_residual_count_ * row_);
    if (value_tokens_ > 0) {
      KVT_RETURN_IF_ERROR(kernels::KiviDequantizeValues(l_, value_codes_.data(), value_scale_.data(),
                                                        value_zero_.data(), value_tokens_, v.data()));
    }
    for (int64_t i = 0; i < ring_count_; ++i) {
      kernels::ConvertToFloat(value_ring_.data() + ((ring_start_ + i) % residual_) * row_,
                              v.data() + (value_tokens_ + i) * row_, row_);
    }
    sel_k_.resize(k.size());
    sel_v_.resize(v.size());
    kernels::ConvertToHalf(k.data(), sel_k_.data(), static_cast<int64_t>(k.size()));
    kernels::ConvertToHalf(v.data(), sel_v_.data(), static_cast<int64_t>(v.size()));
    out->segments.assign(1, kernels::KvSegment<Half>{sel_k_.data(), sel_v_.data(), tokens_, row_, l_.shape.head_dim});
    out->tokens = tokens_;
    return Status::Ok();
  }

  void Save(ByteWriter& w) const override {
    w.Put(tokens_);
    w.PutVector(key_codes_);
    w.PutVector(key_scale_);
    w.PutVector(key_zero_);
    w.Put(key_groups_);
    w.PutVector(key_residual_);
    w.Put(key_residual_count_);
    w.PutVector(value_codes_);
    w.PutVector(value_scale_);
    w.PutVector(value_zero_);
    w.Put(value_tokens_);
    w.PutVector(value_ring_);
    w.Put(ring_start_);
    w.Put(ring_count_);
  }
  Status Load(ByteReader& r) override {
    KVT_RETURN_IF_ERROR(r.Get(&tokens_));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_codes_));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_scale_));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_zero_));
    KVT_RETURN_IF_ERROR(r.Get(&key_groups_));
    KVT_RETURN_IF_ERROR(r.GetVector(&key_residual_));
    KVT_RETURN_IF_ERROR(r.Get(&key_residual_count_));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_codes_));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_scale_));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_zero_));
    KVT_RETURN_IF_ERROR(r.Get(&value_tokens_));
    KVT_RETURN_IF_ERROR(r.GetVector(&value_ring_));
    KVT_RETURN_IF_ERROR(r.Get(&ring_start_));
    KVT_RETURN_IF_ERROR(r.Get(&ring_count_));
    const size_t window = static_cast<size_t>(residual_ * row_);
    const bool ok = key_residual_.size() == window && value_ring_.size() == window && key_groups_ >= 0 &&
                    key_residual_count_ >= 0 && key_residual_count_ < residual_ && ring_start_ >= 0 &&
                    ring_start_ < residual_ && ring_count_ >= 0 && ring_count_ <= residual_ &&
                    value_tokens_ >= 0 &&
                    key_codes_.size() == static_cast<size_t>(key_groups_ * l_.shape.kv_heads * l_.KeyGroupCodeBytes()) &&
                    key_scale_.size() == static_cast<size_t>(key_groups_ * l_.shape.kv_heads * l_.KeyGroupParams()) &&
                    key_zero_.size() == key_scale_.size() &&
                    value_codes_.size() == static_cast<size_t>(value_tokens_ * l_.shape.kv_heads * l_.ValueTokenCodeBytes()) &&
                    value_scale_.size() == static_cast<size_t>(value_tokens_ * l_.shape.kv_heads * l_.ValueGroups()) &&
                    value_zero_.size() == value_scale_.size() &&
                    key_groups_ * l_.key_group + key_residual_count_ == tokens_ &&
                    value_tokens_ + ring_count_ == tokens_;
    if (!ok) return Corruption("kivi layer image: inconsistent sizes");
    return Status::Ok();
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t device_bytes() const override {
    return key_codes_.size() + value_codes_.size() +
           (key_scale_.size() + key_zero_.size() + value_scale_.size() + value_zero_.size()) * sizeof(Half) +
           (key_residual_.size() + value_ring_.size()) * sizeof(Half);
  }

 private:
  Status PushKey(const Half* row) {
    std::copy(row, row + row_, key_residual_.data() + key_residual_count_ * row_);
    if (++key_residual_count_ < residual_) return Status::Ok();
    const int64_t groups = residual_ / l_.key_group;
    const size_t code_off = key_codes_.size(), param_off = key_scale_.size();
    key_codes_.resize(code_off + groups * l_.shape.kv_heads * l_.KeyGroupCodeBytes());
    key_scale_.resize(param_off + groups * l_.shape.kv_heads * l_.KeyGroupParams());
    key_zero_.resize(key_scale_.size());
    KVT_RETURN_IF_ERROR(kernels::KiviQuantizeKeys(l_, key_residual_.data(), row_, groups, key_codes_.data() + code_off,
                                                  key_scale_.data() + param_off, key_zero_.data() + param_off));
    key_groups_ += groups;
    key_residual_count_ = 0;
    return Status::Ok();
  }

  Status PushValue(const Half* row) {
    if (ring_count_ == residual_) {
      const size_t code_off = value_codes_.size(), param_off = value_scale_.size();
      value_codes_.resize(code_off + l_.shape.kv_heads * l_.ValueTokenCodeBytes());
      value_scale_.resize(param_off + l_.shape.kv_heads * l_.ValueGroups());
      value_zero_.resize(value_scale_.size());
      KVT_RETURN_IF_ERROR(kernels::KiviQuantizeValues(l_, value_ring_.data() + ring_start_ * row_, row_, 1,
                                                      value_codes_.data() + code_off, value_scale_.data() + param_off,
                                                      value_zero_.data() + param_off));
      ++value_tokens_;
      ring_start_ = (ring_start_ + 1) % residual_;
      --ring_count_;
    }
    std::copy(row, row + row_, value_ring_.data() + ((ring_start_ + ring_count_) % residual_) * row_);
    ++ring_count_;
    return Status::Ok();
  }

  kernels::KiviLayout l_;
  int64_t residual_;
  int64_t row_;
  int64_t tokens_ = 0;
  std::vector<uint8_t> key_codes_;
  std::vector<Half> key_scale_, key_zero_;
  int64_t key_groups_ = 0;
  std::vector<Half> key_residual_;
  int64_t key_residual_count_ = 0;
  std::vector<uint8_t> value_codes_;
  std::vector<Half> value_scale_, value_zero_;
  int64_t value_tokens_ = 0;
  std::vector<Half> value_ring_;
  int64_t ring_start_ = 0, ring_count_ = 0;
  std::vector<Half> sel_k_, sel_v_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewKiviLayer(const LayerPlan& plan, const kernels::AttentionShape& shape) {
  kernels::KiviLayout layout{shape, plan.bits, plan.group, std::min(plan.group, shape.head_dim)};
  KVT_RETURN_IF_ERROR(layout.Validate());
  if (plan.residual <= 0 || plan.residual % plan.group != 0) {
    return InvalidArgument("kivi: residual must be a positive multiple of group");
  }
  return std::unique_ptr<LayerState>(new KiviLayer(layout, plan.residual));
}

}  // namespace kvt::sequence::internal
