#include "examples/llama/cache_factory.h"

#include "examples/llama/exact_layer_cache.h"

#if KVT_LLAMA_HAVE_POLICIES
#include "policies/registry.h"
#endif
#if KVT_LLAMA_HAVE_SEQUENCE
#include "sequence/sequence_cache_factory.h"
#endif

namespace kvt::llama {

CacheFactory ExactCacheFactory() {
  return [](const policies::LayerShape& shape) -> StatusOr<std::unique_ptr<policies::LayerCache>> {
    return MakeExactLayerCache(shape);
  };
}

bool HavePolicyRegistry() { return KVT_LLAMA_HAVE_POLICIES != 0; }

StatusOr<CacheFactory> CacheFactoryForSpec(const std::string& spec,
                                           const policies::LayerShape& probe_shape) {
  if (spec == "exact") return ExactCacheFactory();
  if (spec.rfind("plan:", 0) == 0) {  // the sequence plane with a saved plan (sequence/)
#if KVT_LLAMA_HAVE_SEQUENCE
    auto plan = sequence::LoadPlan(spec.substr(5));
    if (!plan.ok()) return plan.status();
    CacheFactory f = sequence::MakeSequenceCacheFactory(std::move(*plan));
    auto probe = f(policies::LayerShape{0, probe_shape.num_layers, probe_shape.num_kv_heads,
                                        probe_shape.num_q_heads, probe_shape.head_dim, 0, probe_shape.rope});
    if (!probe.ok()) return probe.status().WithContext("policy '" + spec + "'");
    return f;
#else
    return NotFound("policy '" + spec + "': the sequence plane is not built into this engine");
#endif
  }
#if KVT_LLAMA_HAVE_POLICIES
  CacheFactory f = [spec](const policies::LayerShape& shape) {
    return policies::MakeLayerCache(spec, shape);
  };
  auto probe = f(probe_shape);
  if (!probe.ok()) return probe.status().WithContext("policy '" + spec + "'");
  return f;
#else
  if (spec == "full") return ExactCacheFactory();
  return NotFound("policy '" + spec + "': the policies library is not built into this engine; "
                  "only 'exact' and 'full' are available");
#endif
}

}  // namespace kvt::llama
