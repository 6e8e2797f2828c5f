// "full" — the uncompressed baseline: every token's K/V kept, exact softmax attention
// (DecodeAttention over one segment). "full" (dtype=f32) keeps float32 and is what every other
// method is measured against; "full:dtype=f16" keeps fp16, as a serving cache stores it.
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

// Parameters: dtype = f32 (default) | f16.
StatusOr<std::unique_ptr<LayerCache>> MakeFullCache(MethodParams& params, const LayerShape& shape);

}  // namespace kvt::policies
