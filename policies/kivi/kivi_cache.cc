#include "policies/kivi/kivi_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/convert.h"
#include "host/kernels/kivi_attention.h"
#include "host/kernels/kivi_quantize.h"
#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"

namespace kvt::policies {
namespace {

using kernels::Half;

class KiviCache final : public LayerCache, public InspectableCache {
 public:
  KiviCache(const LayerShape& layer, const kernels::KiviLayout& layout, int residual, std::string name)
      : layer_(layer),
        l_(layout),
        residual_(residual),
        row_(static_cast<int64_t>(layout.shape.kv_heads) * layout.shape.head_dim),
        name_(std::move(name)),
        key_residual_(static_cast<size_t>(residual * row_)),
        value_ring_(static_cast<size_t>(residual * row_)) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    std::vector<Half> k(static_cast<size_t>(batch.tokens * row_)), v(k.size());
    kernels::ConvertToHalf(batch.keys, k.data(), batch.tokens * row_);
    kernels::ConvertToHalf(batch.values, v.data(), batch.tokens * row_);
    for (int64_t t = 0; t < batch.tokens; ++t) {
      KVT_RETURN_IF_ERROR(PushKey(k.data() + t * row_));
      KVT_RETURN_IF_ERROR(PushValue(v.data() + t * row_));
    }
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
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
    workspace_.resize(kernels::KiviAttentionWorkspaceFloats(l_, tokens_));
    return kernels::KiviDecodeAttention(l_, view, query, out, workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override {
    return key_codes_.size() + value_codes_.size() +
           (key_scale_.size() + key_zero_.size() + value_scale_.size() + value_zero_.size()) * sizeof(Half) +
           static_cast<uint64_t>(key_residual_count_ + ring_count_) * row_ * sizeof(Half);
  }
  std::string name() const override { return name_; }

  // Quantized groups dequantized, then the fp16 residuals (keys linear, values ring in order).
  bool ReconstructKv(float* keys, float* values) const override {
    const int64_t qk = key_groups_ * l_.key_group;
    if (key_groups_ > 0 && !kernels::KiviDequantizeKeys(l_, key_codes_.data(), key_scale_.data(),
                                                        key_zero_.data(), key_groups_, keys).ok()) {
      return false;
    }
    kernels::ConvertToFloat(key_residual_.data(), keys + qk * row_, key_residual_count_ * row_);
    if (value_tokens_ > 0 && !kernels::KiviDequantizeValues(l_, value_codes_.data(), value_scale_.data(),
                                                            value_zero_.data(), value_tokens_, values).ok()) {
      return false;
    }
    for (int64_t i = 0; i < ring_count_; ++i) {
      kernels::ConvertToFloat(value_ring_.data() + ((ring_start_ + i) % residual_) * row_,
                              values + (value_tokens_ + i) * row_, row_);
    }
    return true;
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
    KVT_RETURN_IF_ERROR(kernels::KiviQuantizeKeys(l_, key_residual_.data(), row_, groups,
                                                  key_codes_.data() + code_off,
                                                  key_scale_.data() + param_off,
                                                  key_zero_.data() + param_off));
    key_groups_ += groups;
    key_residual_count_ = 0;
    return Status::Ok();
  }

  Status PushValue(const Half* row) {
    if (ring_count_ == residual_) {  // the oldest residual value leaves the window: quantize it
      const size_t code_off = value_codes_.size(), param_off = value_scale_.size();
      value_codes_.resize(code_off + l_.shape.kv_heads * l_.ValueTokenCodeBytes());
      value_scale_.resize(param_off + l_.shape.kv_heads * l_.ValueGroups());
      value_zero_.resize(value_scale_.size());
      KVT_RETURN_IF_ERROR(kernels::KiviQuantizeValues(
          l_, value_ring_.data() + ring_start_ * row_, row_, 1, value_codes_.data() + code_off,
          value_scale_.data() + param_off, value_zero_.data() + param_off));
      ++value_tokens_;
      ring_start_ = (ring_start_ + 1) % residual_;
      --ring_count_;
    }
    std::copy(row, row + row_, value_ring_.data() + ((ring_start_ + ring_count_) % residual_) * row_);
    ++ring_count_;
    return Status::Ok();
  }

  LayerShape layer_;
  kernels::KiviLayout l_;
  int64_t residual_;
  int64_t row_;
  std::string name_;
  int64_t tokens_ = 0;
  // Keys: quantized groups, then a linear residual of up to `residual_` rows.
  std::vector<uint8_t> key_codes_;
  std::vector<Half> key_scale_, key_zero_;
  int64_t key_groups_ = 0;
  std::vector<Half> key_residual_;
  int64_t key_residual_count_ = 0;
  // Values: quantized tokens, then a ring of the last `residual_` rows.
  std::vector<uint8_t> value_codes_;
  std::vector<Half> value_scale_, value_zero_;
  int64_t value_tokens_ = 0;
  std::vector<Half> value_ring_;
  int64_t ring_start_ = 0, ring_count_ = 0;
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> NewKiviCache(const LayerShape& shape,
                                                   const kernels::KiviLayout& layout, int residual,
                                                   std::string name) {
  KVT_RETURN_IF_ERROR(layout.Validate());
  if (residual <= 0 || residual % layout.key_group != 0) {
    return InvalidArgument("kivi: residual " + std::to_string(residual) +
                           " must be a positive multiple of group " + std::to_string(layout.key_group));
  }
  return std::unique_ptr<LayerCache>(new KiviCache(shape, layout, residual, std::move(name)));
}

StatusOr<std::unique_ptr<LayerCache>> MakeKiviCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_ASSIGN_OR_RETURN(const int bits, params.Int("bits", 2, 1, 8));
  KVT_ASSIGN_OR_RETURN(const int group, params.Int("group", 32, 8, 1024));
  KVT_ASSIGN_OR_RETURN(const int residual, params.Int("residual", 128, 8, 1 << 20));
  KVT_RETURN_IF_ERROR(params.Finish());
  kernels::KiviLayout layout{s, bits, group, std::min(group, s.head_dim)};
  return NewKiviCache(shape, layout, residual, "kivi" + std::to_string(bits));
}

}  // namespace kvt::policies
