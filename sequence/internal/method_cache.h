// The policies/lowrank cache behind a tale or kvcompose layer, on either backend: the CPU layer
// (method_layer.cc) is the cache; the GPU layers (gpu_tale_layer.cu, gpu_kvcompose_layer.cu) keep
// it as the owner of the state and mirror what its attention reads in device memory.
//
// tale and kvcompose layers with global=0 are built by the policies registry from the plan's
// MethodSpec. kvcompose layers with global=1 share the sequence's KvComposePlanner (KVCompose's
// cross-layer budget): PlanKvComposeBudget counts them, in plan order, as the planner's layers
// 0..n-1 (so with every layer global=1 it is MakeKvComposeCaches over the model's layers; in a
// mixed plan the planner's "layer 0" rule — its composite scores raised to the max over layers —
// applies to the first global kvcompose layer). All of them must agree on ratio and structured
// (SequencePlan::Validate). The plan is decided when the last of them has been observed; the
// Sequence then settles every layer (LayerState::Settle → KvComposeCache::ApplyPendingPlan).
// Until then the observed ones are "pending": exact, and their Save is UNSUPPORTED (their scores
// and the planner's submissions are not part of a suspend image), so a sequence with global=1
// layers suspends before the first of them is observed or after the last.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"
#include "policies/layer_cache.h"
#include "sequence/internal/layer_state.h"
#include "sequence/sequence_plan.h"

namespace kvt::sequence::internal {

// Sets context->num_layers, kvcompose_planner (a fresh one, null without global=1 layers) and
// kvcompose_index for `plan` (validated).
Status PlanKvComposeBudget(const SequencePlan& plan, LayerContext* context);

// The cache of a tale / kvcompose layer `layer` (INVALID_ARGUMENT for other kinds).
StatusOr<std::unique_ptr<policies::LayerCache>> MakeMethodCache(
    const LayerPlan& plan, const kernels::AttentionShape& shape, int layer,
    const LayerContext& context);

// Appends `tokens` rows of K and V (float32 [tokens][kv_heads][head_dim]) to `cache` at the
// positions that follow its tokens (0, 1, 2, ... of the layer); `positions` is scratch.
// INVALID_ARGUMENT past int32 positions.
Status AppendAtNextPositions(policies::LayerCache& cache, const float* keys, const float* values, int64_t tokens,
                             std::vector<int32_t>* positions);

// The UNSUPPORTED Status of Save on a layer whose cross-layer plan is pending.
Status KvComposePendingError();

}  // namespace kvt::sequence::internal
