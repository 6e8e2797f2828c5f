#include "policies/kivi/kivi_cache.h"

#include <algorithm>
#include <vector>

#include "policies/inspectable_cache.h"
#include "policies/internal/cache_common.h"
#include "policies/internal/kivi_store.h"

namespace kvt::policies {
namespace {

class KiviCache final : public LayerCache, public InspectableCache {
 public:
  KiviCache(const LayerShape& layer, const kernels::KiviLayout& layout, int residual, std::string name)
      : layer_(layer), store_(layout, residual), name_(std::move(name)) {}

  Status Append(const AppendBatch& batch) override {
    KVT_RETURN_IF_ERROR(internal::CheckAppend(layer_, batch, store_.tokens()));
    return store_.Append(batch.keys, batch.values, batch.tokens);
  }

  Status Attend(const float* query, float* out) override {
    KVT_RETURN_IF_ERROR(internal::CheckAttend(query, out, store_.tokens()));
    return store_.Attend(query, out, workspace_);
  }

  int64_t tokens() const override { return store_.tokens(); }
  uint64_t stored_bytes() const override {
    const int64_t row = static_cast<int64_t>(layer_.num_kv_heads) * layer_.head_dim;
    return store_.quantized_bytes() + static_cast<uint64_t>(store_.residual_rows()) * row * sizeof(kernels::Half);
  }
  std::string name() const override { return name_; }

  // Quantized groups dequantized, then the fp16 residuals (keys linear, values ring in order).
  bool ReconstructKv(float* keys, float* values) const override { return store_.Reconstruct(keys, values).ok(); }

 private:
  LayerShape layer_;
  internal::KiviStore store_;
  std::string name_;
  std::vector<float> workspace_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerCache>> NewKiviCache(const LayerShape& shape,
                                                   const kernels::KiviLayout& layout, int residual,
                                                   std::string name) {
  KVT_RETURN_IF_ERROR(internal::KiviStore::CheckConfig(layout, residual));
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
