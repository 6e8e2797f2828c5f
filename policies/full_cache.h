// "full" — the uncompressed baseline: every token's K/V kept in float32, exact softmax attention
// (DecodeAttention over one segment). What every other method is measured against.
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

// No parameters.
StatusOr<std::unique_ptr<LayerCache>> MakeFullCache(MethodParams& params, const LayerShape& shape);

}  // namespace kvt::policies
