#include "policies/internal/kivi_store.h"

#include <algorithm>
#include <string>

#include "host/kernels/convert.h"
#include "host/kernels/kivi_attention.h"
#include "host/kernels/kivi_quantize.h"

namespace kvt::policies::internal {

using kernels::Half;

KiviStore::KiviStore(const kernels::KiviLayout& layout, int residual)
    : l_(layout),
      residual_(residual),
      row_(static_cast<int64_t>(layout.shape.kv_heads) * layout.shape.head_dim),
      key_residual_(static_cast<size_t>(residual * row_)),
      value_ring_(static_cast<size_t>(residual * row_)) {}

Status KiviStore::CheckConfig(const kernels::KiviLayout& layout, int residual) {
  KVT_RETURN_IF_ERROR(layout.Validate());
  if (residual <= 0 || residual % layout.key_group != 0) {
    return InvalidArgument("kivi: residual " + std::to_string(residual) + " must be a positive multiple of group " +
                           std::to_string(layout.key_group));
  }
  return Status::Ok();
}

Status KiviStore::Append(const float* keys, const float* values, int64_t tokens) {
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

Status KiviStore::Attend(const float* query, float* out, std::vector<float>& workspace) const {
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
  workspace.resize(kernels::KiviAttentionWorkspaceFloats(l_, tokens_));
  return kernels::KiviDecodeAttention(l_, view, query, out, workspace);
}

Status KiviStore::Reconstruct(float* keys, float* values) const {
  const int64_t qk = key_groups_ * l_.key_group;
  if (key_groups_ > 0) {
    KVT_RETURN_IF_ERROR(kernels::KiviDequantizeKeys(l_, key_codes_.data(), key_scale_.data(), key_zero_.data(),
                                                    key_groups_, keys));
  }
  kernels::ConvertToFloat(key_residual_.data(), keys + qk * row_, key_residual_count_ * row_);
  if (value_tokens_ > 0) {
    KVT_RETURN_IF_ERROR(kernels::KiviDequantizeValues(l_, value_codes_.data(), value_scale_.data(),
                                                      value_zero_.data(), value_tokens_, values));
  }
  for (int64_t i = 0; i < ring_count_; ++i) {
    kernels::ConvertToFloat(value_ring_.data() + ((ring_start_ + i) % residual_) * row_,
                            values + (value_tokens_ + i) * row_, row_);
  }
  return Status::Ok();
}

uint64_t KiviStore::quantized_bytes() const {
  return key_codes_.size() + value_codes_.size() +
         (key_scale_.size() + key_zero_.size() + value_scale_.size() + value_zero_.size()) * sizeof(Half);
}

Status KiviStore::PushKey(const Half* row) {
  std::copy(row, row + row_, key_residual_.data() + key_residual_count_ * row_);
  if (++key_residual_count_ < residual_) return Status::Ok();
  const int64_t groups = residual_ / l_.key_group;
  const size_t code_off = key_codes_.size(), param_off = key_scale_.size();
  key_codes_.resize(code_off + groups * l_.shape.kv_heads * l_.KeyGroupCodeBytes());
  key_scale_.resize(param_off + groups * l_.shape.kv_heads * l_.KeyGroupParams());
  key_zero_.resize(key_scale_.size());
  KVT_RETURN_IF_ERROR(kernels::KiviQuantizeKeys(l_, key_residual_.data(), row_, groups,
                                                key_codes_.data() + code_off, key_scale_.data() + param_off,
                                                key_zero_.data() + param_off));
  key_groups_ += groups;
  key_residual_count_ = 0;
  return Status::Ok();
}

Status KiviStore::PushValue(const Half* row) {
  if (ring_count_ == residual_) {  // the oldest residual value leaves the window: quantize it
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

namespace {

// count * per == size, without overflow for any loaded count (per > 0).
bool Holds(size_t size, int64_t count, int64_t per) {
  return count >= 0 && static_cast<uint64_t>(count) <= size / static_cast<uint64_t>(per) &&
         static_cast<uint64_t>(count) * static_cast<uint64_t>(per) == size;
}

}  // namespace

Status KiviStore::CheckLoaded() const {
  const size_t window = static_cast<size_t>(residual_ * row_);
  const int64_t kvh = l_.shape.kv_heads;
  // The counts come from an image: bound each by its array's size before any arithmetic on it.
  const bool ok = key_residual_.size() == window && value_ring_.size() == window &&
                  key_residual_count_ >= 0 && key_residual_count_ < residual_ && ring_start_ >= 0 &&
                  ring_start_ < residual_ && ring_count_ >= 0 && ring_count_ <= residual_ &&
                  Holds(key_codes_.size(), key_groups_, kvh * l_.KeyGroupCodeBytes()) &&
                  Holds(key_scale_.size(), key_groups_, kvh * l_.KeyGroupParams()) &&
                  key_zero_.size() == key_scale_.size() &&
                  Holds(value_codes_.size(), value_tokens_, kvh * l_.ValueTokenCodeBytes()) &&
                  Holds(value_scale_.size(), value_tokens_, kvh * l_.ValueGroups()) &&
                  value_zero_.size() == value_scale_.size() &&
                  key_groups_ * l_.key_group + key_residual_count_ == tokens_ &&
                  value_tokens_ + ring_count_ == tokens_;
  if (!ok) return Corruption("kivi layer image: inconsistent sizes");
  return Status::Ok();
}

}  // namespace kvt::policies::internal
