// ReplayAttention — feeds captured real activations (kvt::llama::ActivationCapture) through a KV
// method's LayerCache, layer by layer, as the engine would, and compares every decode step's
// attention output with exact attention over the same tokens.
//
// Per layer: Append the first `prefill` tokens' K/V, Compress with the last `observation` prefill
// queries, then for each later token t: Append(k_t, v_t) and Attend(q_t), against exact softmax
// attention over tokens 0..t. Error of a step: ||o - o*||_2 / ||o*||_2 over the whole
// [q_heads][head_dim] output; the layer's figure is the mean over steps.
// Where the cache implements policies::InspectableCache: K/V reconstruction error at the window's
// end, and per decode step and KV head the top-k recall and captured mass of the tokens it read,
// against exact attention (importance of a token = its probability averaged over the head's
// query group; k = the number of tokens read).
// A cache may answer per layer (TailorKV: its dense layers reconstruct, its sparse layers select):
// each figure is the mean over the layers that answered it, and the result says how many did.
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
  // From policies::InspectableCache, when the method implements it (else negative: n/a).
  double key_recon_error = -1.0;    // ||K' - K||_F / ||K||_F at the window's end, mean over layers
  double value_recon_error = -1.0;  // same for V
  double topk_recall = -1.0;        // |selected ∩ exact top-|selected|| / |selected|, mean over steps, heads, layers
  double attention_mass = -1.0;     // exact attention probability on the selected tokens, same mean
  int recon_layers = 0;             // layers whose cache reconstructed K/V
  int selection_layers = 0;         // layers whose cache reported selected tokens
  int64_t selection_samples = 0;    // (decode step, KV head) pairs behind topk_recall / attention_mass
};

StatusOr<ReplayResult> ReplayAttention(const llama::Transformer& model,
                                       const llama::ActivationCapture& capture,
                                       const llama::CacheFactory& factory, int prefill,
                                       int observation);

}  // namespace kvt::fidelity
