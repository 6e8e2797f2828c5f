// "streamingllm" — StreamingLLM (Xiao et al., "Efficient Streaming Language Models with Attention
// Sinks"): the first `sinks` tokens plus a sliding window of the last `recent` tokens, fp16;
// everything else is dropped as it leaves the window. Parameters: sinks=0.. (4), recent=1.. (1020).
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

StatusOr<std::unique_ptr<LayerCache>> MakeStreamingLlmCache(MethodParams& params,
                                                            const LayerShape& shape);

}  // namespace kvt::policies
