// "snapkv" — SnapKV (Li et al., 2024): after prefill, the last `window` prompt queries vote for
// prefix tokens (summed attention, max-pooled over `pool` neighbours); each KV head keeps its top
// `budget` prefix tokens plus the observation window, and decode tokens are appended after them.
// Without Compress (no observation offered) it behaves like "full" in fp16.
// Parameters: budget=tokens per KV head (1024), window=1.. (32), pool=odd (7).
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

StatusOr<std::unique_ptr<LayerCache>> MakeSnapKvCache(MethodParams& params, const LayerShape& shape);

}  // namespace kvt::policies
