// "quest" — Quest (Tang et al., 2024): all K/V kept in fp16; per page of `page` tokens a per-channel
// key min/max; each decode step scores pages with the query-aware upper bound, keeps the top pages
// of each KV head within `budget` tokens (the current partial page always attended) and attends to
// those only. Parameters: budget=tokens (2048), page=1..1024 (16).
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

StatusOr<std::unique_ptr<LayerCache>> MakeQuestCache(MethodParams& params, const LayerShape& shape);

}  // namespace kvt::policies
