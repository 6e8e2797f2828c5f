// Argument checks shared by the lowrank caches. Private to policies/lowrank.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/status_or.h"
#include "policies/layer_cache.h"

namespace kvt::policies::lowrank::internal {

// Positive sizes, q_heads a multiple of kv_heads, head_dim <= 256.
Status CheckShape(const LayerShape& shape, std::string_view method);

// Non-null keys/values/positions (and keys_pre_rope when `need_pre_rope`), tokens >= 0,
// positions non-negative.
Status CheckBatch(const AppendBatch& batch, bool need_pre_rope, std::string_view method);

// "8-8-4-4" -> {8, 8, 4, 4}.
StatusOr<std::array<int, 4>> ParseBits(std::string_view text, std::string_view key);

}  // namespace kvt::policies::lowrank::internal
