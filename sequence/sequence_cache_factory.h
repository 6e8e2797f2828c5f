// The sequence plane behind the engine's per-layer LayerCache seam: a factory that, for each new
// engine sequence, opens one sequence::Sequence from a plan and hands out one LayerCache per layer
// forwarding to it (Append, Attend, and HintQuery from policies/hintable_cache.h). Compress is a
// no-op: the plan already classified the layers.
//
// The engine builds a sequence's caches layer 0 first, then 1, 2, ... on one thread
// (kvt::llama::Transformer::NewSequence does); layer 0 opens a new Sequence and later layers on the
// same thread join it. A layer's shape must match the plan (layers, heads, head_dim).
// The factory is copyable and thread-safe (each thread builds its own sequences).
#pragma once

#include <functional>
#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "sequence/sequence_plan.h"

namespace kvt::sequence {

using LayerCacheFactory =
    std::function<StatusOr<std::unique_ptr<policies::LayerCache>>(const policies::LayerShape&)>;

LayerCacheFactory MakeSequenceCacheFactory(SequencePlan plan);

}  // namespace kvt::sequence
