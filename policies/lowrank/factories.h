// Registry factories of the lowrank methods (signature policies::LayerCacheFactory), one row each
// in policies/registry.cc:
//   {"tale",      MakeTaleLayerCache,      "", "TALE token-adaptive low-rank, reconstruction-free"}
//   {"lorc",      MakeLorcLayerCache,      "", "LoRC rank-r latents (factors=FILE from kvt-lorc)"}
//   {"kvcompose", MakeKvComposeLayerCache, "", "KVCompose composite tokens, global budget"}
// Parameters are documented in tale_cache.h, lorc_cache.h and kvcompose_cache.h.
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/lowrank/kvcompose_cache.h"
#include "policies/method_params.h"

namespace kvt::policies::lowrank {

StatusOr<std::unique_ptr<LayerCache>> MakeTaleLayerCache(MethodParams& params, const LayerShape& shape);
StatusOr<std::unique_ptr<LayerCache>> MakeLorcLayerCache(MethodParams& params, const LayerShape& shape);
StatusOr<std::unique_ptr<LayerCache>> MakeKvComposeLayerCache(MethodParams& params,
                                                              const LayerShape& shape);

// The kvcompose spec's keys (ratio, structured, global; global defaults to 1), checked and
// finished, for a caller that builds KvComposeCaches around its own planner (a Sequence owning
// the cross-layer budget of its plan's kvcompose layers, sequence/internal/method_cache.h).
struct KvComposeSpec {
  KvComposeOptions options;
  bool global = true;
};
StatusOr<KvComposeSpec> ParseKvComposeSpec(MethodParams& params);

}  // namespace kvt::policies::lowrank
