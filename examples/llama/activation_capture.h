// Activation capture — runs the real model over a token window and records, for every layer,
// the attention inputs a KV method sees: Q post-RoPE, K before and after RoPE, V. The fidelity
// harness replays them through each method (LayerCache) against exact attention.
//
// The window is one sequence at positions 0..n-1, run as a single exact prefill (identical to
// decoding it token by token with an exact cache). Shapes per layer:
//   q      [tokens][q_heads][head_dim]     k_pre, k, v [tokens][kv_heads][head_dim]
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status_or.h"
#include "examples/llama/activation_observer.h"
#include "examples/llama/transformer.h"

namespace kvt::llama {

struct LayerCapture {
  std::vector<float> q, k_pre, k, v;
};

struct ActivationCapture {
  ModelConfig config;
  std::vector<int32_t> tokens;
  std::vector<LayerCapture> layers;    // [n_layers]
  std::vector<float> logits;           // [tokens][vocab], exact
};

// An observer that appends everything it sees (usable with any Prefill/Decode mix).
class CapturingObserver final : public ActivationObserver {
 public:
  CapturingObserver(int layers, int q_dim, int kv_dim) : q_dim_(q_dim), kv_dim_(kv_dim), layers_(layers) {}
  void OnLayer(const LayerActivationsView& view) override;
  std::vector<LayerCapture>& layers() { return layers_; }

 private:
  int q_dim_, kv_dim_;
  std::vector<LayerCapture> layers_;
};

// `tokens` (1..seq_len of them) through the model with exact attention.
StatusOr<ActivationCapture> CaptureActivations(const Transformer& model,
                                               std::span<const int32_t> tokens);

}  // namespace kvt::llama
