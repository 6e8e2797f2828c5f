// "kivi<bits>" — KIVI: keys quantized per channel in groups of `group` tokens, values per token in
// groups of `group` channels (clamped to head_dim), the last tokens kept in fp16 in a residual
// window of `residual` tokens (keys quantized in blocks of `residual` when the window fills,
// values one at a time as they leave it). Attention runs on the packed codes (KiviDecodeAttention).
//
// Parameters: bits=1|2|4|8 (2), group=8..1024, multiple of 8 (32), residual = a positive multiple
// of group (128).
#pragma once

#include <memory>

#include "common/status_or.h"
#include "host/kernels/kivi_layout.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

StatusOr<std::unique_ptr<LayerCache>> MakeKiviCache(MethodParams& params, const LayerShape& shape);

// Direct constructor for composing methods (TailorKV's dense layers): layout plus residual size.
StatusOr<std::unique_ptr<LayerCache>> NewKiviCache(const LayerShape& shape,
                                                   const kernels::KiviLayout& layout, int residual,
                                                   std::string name);

}  // namespace kvt::policies
