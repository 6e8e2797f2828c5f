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
#include "policies/method_params.h"

namespace kvt::policies::lowrank {

StatusOr<std::unique_ptr<LayerCache>> MakeTaleLayerCache(MethodParams& params, const LayerShape& shape);
StatusOr<std::unique_ptr<LayerCache>> MakeLorcLayerCache(MethodParams& params, const LayerShape& shape);
StatusOr<std::unique_ptr<LayerCache>> MakeKvComposeLayerCache(MethodParams& params,
                                                              const LayerShape& shape);

}  // namespace kvt::policies::lowrank
