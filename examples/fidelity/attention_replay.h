// ReplayAttention — feeds captured real activations (kvt::llama::ActivationCapture) through a KV
// method's LayerCache, layer by layer, as the engine would, and compares every decode step's
// attention output with exact attention over the same tokens.
//
// Per layer: Append the first `prefill` tokens' K/V, Compress with the last `observation` prefill
// queries, then for each later token t: Append(k_t, v_t) and Attend(q_t), against exact softmax
// attention over tokens 0..t. Error of a step: ||o - o*||_2 / ||o*||_2 over the whole
// [q_heads][head_dim] output; the layer's figure is the mean over steps.
// Caches of all layers are created first, in layer order (methods that plan across layers, like
// KVCompose, rely on it).
#pragma once

#include <vector>

#include "common/status_or.h"
#include "examples/llama/activation_capture.h"
#include "examples/llama/cache_factory.h"
#include "examples/llama/transformer.h"

namespace kvt::fidelity {

struct ReplayResult {
  std::vector<double> layer_rel_error;  // [layers], mean over decode steps
  double stored_bytes_per_token = 0.0;  // per layer, at the window's end
  double kept_fraction = 0.0;           // kept / appended tokens, mean over layers
  int decode_steps = 0;
};

StatusOr<ReplayResult> ReplayAttention(const llama::Transformer& model,
                                       const llama::ActivationCapture& capture,
                                       const llama::CacheFactory& factory, int prefill,
                                       int observation);

}  // namespace kvt::fidelity
