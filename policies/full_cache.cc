#include "policies/full_cache.h"

#include <algorithm>
#include <vector>

#include "host/kernels/convert.h"
#include "host/kernels/decode_attention.h"
#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/half_rows.h"

namespace kvt::policies {
namespace {

// Rows of one dtype: float32 kept as given, or fp16 through HalfRows.
template <typename T>
class Rows {
 public:
  explicit Rows(int64_t row) : row_(row) {}
  void Append(const float* rows, int64_t tokens) { data_.insert(data_.end(), rows, rows + tokens * row_); }
  const float* data() const { return data_.data(); }
  void CopyTo(float* out) const { std::copy(data_.begin(), data_.end(), out); }

 private:
  int64_t row_;
  std::vector<float> data_;
};

template <>
class Rows<kernels::Half> {
 public:
  explicit Rows(int64_t row) : rows_(row) {}
  void Append(const float* rows, int64_t tokens) { rows_.Append(rows, tokens); }
  const kernels::Half* data() const { return rows_.data(); }
  void CopyTo(float* out) const { kernels::ConvertToFloat(rows_.data(), out, rows_.tokens() * rows_.row_elems()); }

 private:
  internal::HalfRows rows_;
};

template <typename T>
class FullCache final : public LayerCache, public InspectableCache {
 public:
  FullCache(const LayerShape& layer, const kernels::AttentionShape& shape)
      : layer_(layer), shape_(shape), row_(static_cast<int64_t>(shape.kv_heads) * shape.head_dim),
        keys_(row_), values_(row_) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, tokens_));
    keys_.Append(batch.keys, batch.tokens);
    values_.Append(batch.values, batch.tokens);
    tokens_ += batch.tokens;
    return Status::Ok();
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, tokens_));
    const kernels::KvSegment<T> seg{keys_.data(), values_.data(), tokens_, row_, shape_.head_dim};
    workspace_.resize(kernels::DecodeAttentionWorkspaceFloats(shape_, tokens_));
    return kernels::DecodeAttention(shape_, std::span<const kernels::KvSegment<T>>(&seg, 1), query, out,
                                    workspace_);
  }

  int64_t tokens() const override { return tokens_; }
  uint64_t stored_bytes() const override { return 2 * static_cast<uint64_t>(tokens_) * row_ * sizeof(T); }
  std::string name() const override { return "full"; }

  // Every token is kept: what the cache would give back is its stored K and V.
  bool ReconstructKv(float* keys, float* values) const override {
    keys_.CopyTo(keys);
    values_.CopyTo(values);
    return true;
  }

 private:
  LayerShape layer_;
  kernels::AttentionShape shape_;
  int64_t row_;
  int64_t tokens_ = 0;
  Rows<T> keys_, values_;  // [tokens][kv_heads][head_dim]
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> MakeFullCache(MethodParams& params, const LayerShape& shape) {
  KVT_ASSIGN_OR_RETURN(auto s, internal::ToAttentionShape(shape));
  KVT_ASSIGN_OR_RETURN(const std::string dtype, params.Word("dtype", "f32"));
  KVT_RETURN_IF_ERROR(params.Finish());
  if (dtype == "f32") return std::unique_ptr<LayerCache>(new FullCache<float>(shape, s));
  if (dtype == "f16") return std::unique_ptr<LayerCache>(new FullCache<kernels::Half>(shape, s));
  return InvalidArgument("full: dtype must be f32 or f16, not '" + dtype + "'");
}

}  // namespace kvt::policies
