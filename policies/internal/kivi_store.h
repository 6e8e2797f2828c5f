// KiviStore — one layer's K/V in KIVI form (Liu et al., "KIVI", Sec. 3.3): quantized key groups
// and value tokens plus fp16 residual windows of the most recent `residual` tokens. Keys are
// quantized in blocks of `residual` tokens when their window fills; values one at a time as they
// leave their ring. Layouts: host/kernels/kivi_layout.h.
//
// The one implementation of this storage rule: policies/kivi (KiviCache, TailorKV's dense layers)
// and the sequence plane's kivi layers (sequence/internal/kivi_layer.cc, which also saves and
// loads it bit for bit) both wrap it. Not thread-safe; allocates as it grows.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::policies::internal {

class KiviStore {
 public:
  // `layout` valid and `residual` a positive multiple of layout.key_group (CheckConfig).
  KiviStore(const kernels::KiviLayout& layout, int residual);

  static Status CheckConfig(const kernels::KiviLayout& layout, int residual);

  // keys, values: [tokens][kv_heads][head_dim] floats, rounded to fp16 on the way in.
  Status Append(const float* keys, const float* values, int64_t tokens);

  // Decode attention on the packed codes and the residuals (host/kernels/kivi_attention.h).
  // query [q_heads][head_dim], out [q_heads][head_dim]; `workspace` grows as needed.
  Status Attend(const float* query, float* out, std::vector<float>& workspace) const;

  // Everything dequantized, in token order: keys, values [tokens()][kv_heads][head_dim].
  Status Reconstruct(float* keys, float* values) const;

  int64_t tokens() const { return tokens_; }
  // Codes, scales and zeros.
  uint64_t quantized_bytes() const;
  // Rows held in the residual windows now (keys + values).
  int64_t residual_rows() const { return key_residual_count_ + ring_count_; }
  // The two residual windows at full capacity.
  uint64_t window_bytes() const { return (key_residual_.size() + value_ring_.size()) * sizeof(kernels::Half); }

  // Serialization through any writer/reader with Put/PutVector and Get/GetVector returning
  // Status (sequence/internal/bytes.h). Load rejects an image whose sizes disagree (CORRUPTION).
  template <typename Writer>
  void Save(Writer& w) const;
  template <typename Reader>
  Status Load(Reader& r);

 private:
  Status PushKey(const kernels::Half* row);
  Status PushValue(const kernels::Half* row);
  Status CheckLoaded() const;

  kernels::KiviLayout l_;
  int64_t residual_;
  int64_t row_;
  int64_t tokens_ = 0;
  // Keys: quantized groups, then a linear residual of up to `residual_` rows.
  std::vector<uint8_t> key_codes_;
  std::vector<kernels::Half> key_scale_, key_zero_;
  int64_t key_groups_ = 0;
  std::vector<kernels::Half> key_residual_;
  int64_t key_residual_count_ = 0;
  // Values: quantized tokens, then a ring of the last `residual_` rows.
  std::vector<uint8_t> value_codes_;
  std::vector<kernels::Half> value_scale_, value_zero_;
  int64_t value_tokens_ = 0;
  std::vector<kernels::Half> value_ring_;
  int64_t ring_start_ = 0, ring_count_ = 0;
};

template <typename Writer>
void KiviStore::Save(Writer& w) const {
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

template <typename Reader>
Status KiviStore::Load(Reader& r) {
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
  return CheckLoaded();
}

}  // namespace kvt::policies::internal
