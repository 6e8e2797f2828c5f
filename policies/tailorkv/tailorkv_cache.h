// "tailorkv<bits>" — TailorKV (Yao et al., 2025): each layer is either
//   dense:  quantization-friendly, all tokens kept KIVI-quantized (bits, group=64, residual=128);
//   sparse: full fp16 K/V in the host tier; each decode step picks the critical key channels
//           (|q̂_i| * max_t |K_t,i|), scores the out-of-window tokens on those channels only, and
//           attends to sinks + recent prompt tokens + the top-k gathered tokens + generated tokens.
// mode=auto classifies the layer at Compress from the prompt's last `obs` queries: dense when its
// dense-preference score exceeds `tau` (DensePreferenceScore). If attention is asked before any
// observation, auto falls back to sparse (which keeps full precision).
//
// Inspection (policies::InspectableCache; a layer is one kind or the other, so it reports one):
//   dense layer:  ReconstructKv = the KIVI reconstruction of every token (K post-RoPE, V);
//                 SelectedTokens empty (it reads every token).
//   sparse layer: SelectedTokens(h) = sinks + head h's gathered top-k + recent prompt tokens +
//                 generated tokens read by the last Attend (every token when the prompt fits the
//                 budget); ReconstructKv returns false (it keeps every token as fp16, so there is
//                 nothing method-specific to reconstruct).
//   undecided (no Compress, no Attend yet): neither.
// So a per-layer-mixed model reports recon error over its dense layers and recall / mass over its
// sparse layers (kvt-fidelity says which and how many).
//
// Parameters: bits=1..8 (tailorkv1: 1, tailorkv2: 2), mode=auto|dense|sparse, tau=0.2,
// top_frac=0.05, obs=32, budget=192, sinks=8, recent=56 (gathered = budget - sinks - recent),
// channels=8 (critical channels per 128 of head_dim), group=64, residual=128.
#pragma once

#include <memory>

#include "common/status_or.h"
#include "policies/layer_cache.h"
#include "policies/method_params.h"

namespace kvt::policies {

StatusOr<std::unique_ptr<LayerCache>> MakeTailorKvCache(MethodParams& params, const LayerShape& shape);

}  // namespace kvt::policies
