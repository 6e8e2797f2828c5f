#include "sequence/internal/method_cache.h"

#include <numeric>
#include <string>

#include "policies/lowrank/factories.h"
#include "policies/lowrank/kvcompose_cache.h"
#include "policies/lowrank/kvcompose_planner.h"
#include "policies/method_params.h"
#include "policies/registry.h"

namespace kvt::sequence::internal {

Status PlanKvComposeBudget(const SequencePlan& plan, LayerContext* context) {
  context->num_layers = plan.num_layers();
  context->kvcompose_index.assign(static_cast<size_t>(plan.num_layers()), -1);
  context->kvcompose_planner.reset();
  int global = 0;
  policies::lowrank::KvComposeOptions options;
  for (int l = 0; l < plan.num_layers(); ++l) {
    const LayerPlan& lp = plan.layers[static_cast<size_t>(l)];
    if (!KvComposeGlobal(lp)) continue;
    KVT_ASSIGN_OR_RETURN(auto params, policies::MethodParams::Parse(lp.method_params));
    KVT_ASSIGN_OR_RETURN(const auto spec, policies::lowrank::ParseKvComposeSpec(params));
    options = spec.options;  // the same for every global layer (SequencePlan::Validate)
    context->kvcompose_index[static_cast<size_t>(l)] = global++;
  }
  if (global > 0) {
    context->kvcompose_planner = std::make_shared<policies::lowrank::KvComposePlanner>(
        global, plan.kv_heads, options.ratio, options.structured);
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<policies::LayerCache>> MakeMethodCache(
    const LayerPlan& plan, const kernels::AttentionShape& shape, int layer,
    const LayerContext& context) {
  if (plan.kind != LayerKind::kTale && plan.kind != LayerKind::kKvCompose) {
    return InvalidArgument("method layer: kind " + std::string(LayerKindName(plan.kind)));
  }
  policies::LayerShape s;
  s.layer = layer;
  s.num_layers = context.num_layers;
  s.num_kv_heads = shape.kv_heads;
  s.num_q_heads = shape.q_heads;
  s.head_dim = shape.head_dim;
  const int index = layer >= 0 && static_cast<size_t>(layer) < context.kvcompose_index.size()
                        ? context.kvcompose_index[static_cast<size_t>(layer)]
                        : -1;
  if (!KvComposeGlobal(plan)) return policies::MakeLayerCache(MethodSpec(plan), s);
  if (index < 0 || context.kvcompose_planner == nullptr) {
    return Internal("kvcompose global=1 layer " + std::to_string(layer) + " has no planner");
  }
  KVT_ASSIGN_OR_RETURN(auto params, policies::MethodParams::Parse(plan.method_params));
  KVT_ASSIGN_OR_RETURN(const auto spec, policies::lowrank::ParseKvComposeSpec(params));
  s.layer = index;
  s.num_layers = 0;  // the planner's layers, not the model's
  for (int i : context.kvcompose_index) s.num_layers += i >= 0 ? 1 : 0;
  KVT_ASSIGN_OR_RETURN(auto cache, policies::lowrank::KvComposeCache::Create(
                                       s, spec.options, context.kvcompose_planner));
  return std::unique_ptr<policies::LayerCache>(std::move(cache));
}

Status AppendAtNextPositions(policies::LayerCache& cache, const float* keys, const float* values, int64_t tokens,
                             std::vector<int32_t>* positions) {
  if (cache.tokens() + tokens > INT32_MAX) return InvalidArgument("append: positions past int32");
  positions->resize(static_cast<size_t>(tokens));
  std::iota(positions->begin(), positions->end(), static_cast<int32_t>(cache.tokens()));
  policies::AppendBatch b;
  b.keys = keys;
  b.values = values;
  b.positions = positions->data();
  b.tokens = static_cast<int>(tokens);
  return cache.Append(b);
}

Status KvComposePendingError() {
  return Unsupported(
      "kvcompose global=1: the cross-layer plan waits for every global=1 kvcompose layer's "
      "Observe, "
      "and a pending plan is not part of a suspend image; suspend before the first of them is "
      "observed or after the last");
}

}  // namespace kvt::sequence::internal
