// CacheFactory — how the engine gets one LayerCache per layer of a sequence, and the resolution
// of a policy spec ("full", "kivi2", "snapkv:budget=64", ...) into such a factory.
//
// "exact" is always the engine's own ExactLayerCache. "plan:<file>" runs every layer through the
// sequence plane (sequence/) with a saved SequencePlan (kvt-llama plan writes one). Every other spec, "full" included, goes to
// policies::MakeLayerCache (policies/registry.h) when the policies library is built; without it
// only "exact" and "full" (mapped to ExactLayerCache) resolve and the rest are NOT_FOUND.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status_or.h"
#include "policies/layer_cache.h"

namespace kvt::llama {

using CacheFactory =
    std::function<StatusOr<std::unique_ptr<policies::LayerCache>>(const policies::LayerShape&)>;

CacheFactory ExactCacheFactory();

// Resolves `spec`, checking it by building one cache for `probe_shape` so that a bad spec fails
// here, before any work, with the registry's message.
StatusOr<CacheFactory> CacheFactoryForSpec(const std::string& spec,
                                           const policies::LayerShape& probe_shape);

// Whether the policies registry is linked in (false: only "exact"/"full" resolve).
bool HavePolicyRegistry();

}  // namespace kvt::llama
