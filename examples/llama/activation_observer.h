// ActivationObserver — sees each layer's real attention inputs as the engine computes them
// (the capture API and the fidelity harness use it). Called on the thread running the sequence,
// synchronously, once per layer per Prefill/Decode call; the pointers are valid only during the call.
#pragma once

#include <cstdint>

namespace kvt::llama {

struct LayerActivationsView {
  int layer = 0;
  int64_t first_position = 0;   // position of the first token in this call
  int tokens = 0;
  const float* q = nullptr;       // [tokens][q_heads][head_dim], post-RoPE
  const float* k_pre = nullptr;   // [tokens][kv_heads][head_dim], pre-RoPE
  const float* k = nullptr;       // [tokens][kv_heads][head_dim], post-RoPE
  const float* v = nullptr;       // [tokens][kv_heads][head_dim]
};

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void OnLayer(const LayerActivationsView& view) = 0;
};

}  // namespace kvt::llama
