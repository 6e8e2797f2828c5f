// "tale" and "kvcompose" on a CPU sequence — a layer kept by a policies::LayerCache
// (policies/lowrank), built by method_cache.h (the policies registry from the plan's MethodSpec,
// or, for kvcompose with global=1, around the sequence's shared planner).
//
// Append hands the cache post-RoPE keys with positions = the layer's absolute token index (both
// methods use post-RoPE keys only, so keys_pre_rope is null); Observe forwards to Compress; Attend
// is the cache's own. Select: TALE attends over basis coefficients without rebuilding K/V
// (reconstruction-free), and KVCompose keeps a different token set per KV head, which SelectedKv
// (one token list for all heads) cannot describe, so both answer UNSUPPORTED. Save/Load: the
// cache's own image (TaleCache / KvComposeCache::Save), loaded into a cache built from the same
// plan line; a bad image is CORRUPTION; a global=1 kvcompose layer whose cross-layer plan is
// pending refuses Save (method_cache.h).
#include <string>

#include "policies/lowrank/kvcompose_cache.h"
#include "policies/lowrank/tale_cache.h"
#include "sequence/internal/method_cache.h"

namespace kvt::sequence::internal {
namespace {

class MethodLayer final : public LayerState {
 public:
  MethodLayer(const kernels::AttentionShape& shape, LayerKind kind,
              std::unique_ptr<policies::LayerCache> cache, policies::lowrank::TaleCache* tale,
              policies::lowrank::KvComposeCache* kvcompose)
      : LayerState(shape),
        kind_(kind),
        cache_(std::move(cache)),
        tale_(tale),
        kvcompose_(kvcompose) {}

  Status Append(const float* keys, const float* values, int64_t tokens) override {
    return AppendAtNextPositions(*cache_, keys, values, tokens, &positions_);
  }

  Status Observe(const float* queries, int window) override {
    return cache_->Compress(policies::Observation{queries, window});
  }

  Status Settle() override { return kvcompose_ != nullptr ? kvcompose_->ApplyPendingPlan() : Status::Ok(); }

  Status Attend(const float* query, float* out) override { return cache_->Attend(query, out); }

  Status Select(const float*, SelectedKv*) override {
    if (kind_ == LayerKind::kTale) {
      return Unsupported("select: a tale layer attends over low-rank coefficients without rebuilding "
                         "K/V (reconstruction-free); use Attend");
    }
    return Unsupported("select: a kvcompose layer keeps a different token set per KV head, which "
                       "SelectedKv cannot describe; use Attend");
  }

  Status Save(ByteWriter& w) const override {
    if (tale_ != nullptr) {
      tale_->Save(w);
      return Status::Ok();
    }
    if (kvcompose_->plan_pending()) return KvComposePendingError();
    return kvcompose_->Save(w);
  }
  Status Load(ByteReader& r) override {
    return tale_ != nullptr ? tale_->Load(r) : kvcompose_->Load(r);
  }

  int64_t tokens() const override { return cache_->tokens(); }
  int64_t kept_tokens() const override { return cache_->kept_tokens(); }
  uint64_t device_bytes() const override { return cache_->stored_bytes(); }

 private:
  LayerKind kind_;
  std::unique_ptr<policies::LayerCache> cache_;
  policies::lowrank::TaleCache* tale_;  // cache_ as what it is: exactly one is set
  policies::lowrank::KvComposeCache* kvcompose_;
  std::vector<int32_t> positions_;
};

}  // namespace

StatusOr<std::unique_ptr<LayerState>> NewMethodLayer(const LayerPlan& plan,
                                                     const kernels::AttentionShape& shape,
                                                     int layer, const LayerContext* context) {
  KVT_ASSIGN_OR_RETURN(auto cache, MakeMethodCache(plan, shape, layer, *context));
  auto* tale = plan.kind == LayerKind::kTale
                   ? dynamic_cast<policies::lowrank::TaleCache*>(cache.get())
                   : nullptr;
  auto* kvcompose = plan.kind == LayerKind::kKvCompose
                        ? dynamic_cast<policies::lowrank::KvComposeCache*>(cache.get())
                        : nullptr;
  if (tale == nullptr && kvcompose == nullptr) {
    return Internal("method layer: the registry built '" + cache->name() + "' for " +
                    MethodSpec(plan));
  }
  return std::unique_ptr<LayerState>(
      new MethodLayer(shape, plan.kind, std::move(cache), tale, kvcompose));
}

}  // namespace kvt::sequence::internal
