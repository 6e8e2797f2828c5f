// Transformer — the Llama forward pass on the CPU over borrowed ModelWeights.
//
// Per layer: x += Wo·Attn(RoPE(Wq·n(x)), RoPE(Wk·n(x)), Wv·n(x)); x += W2·(silu(W1·n(x)) ⊙ W3·n(x)),
// n = RMSNorm; logits = Wcls·n(x). Grouped-query attention, interleaved-pair RoPE.
//
// Attention and the KV cache:
//  - Prefill runs a batch of tokens with exact causal attention over the dense K/V of everything
//    prefilled so far (as a serving prefill kernel does), then appends the batch's K/V to every
//    layer's LayerCache and, when asked, calls LayerCache::Compress with the batch's last queries.
//  - Decode runs one token: its K/V are appended to the cache and its attention is
//    LayerCache::Attend, i.e. whatever the KV method keeps (compressed, selected, offloaded).
//  Once a Decode has run, a later Prefill goes token by token through the cache.
//
// Device: constructed with a DeviceBackend (device_backend.h), every sequence it makes runs its
// forward passes on that device with the K/V cache there; Prefill and Decode then compute the
// same function as the CPU's exact cache (float32, summation order aside). Such a sequence takes
// only caches named "exact" or "full" from the factory (else UNSUPPORTED), and no observer or
// AppendKv (UNSUPPORTED).
//
// Thread safety: const methods only; a Transformer may be shared by threads that each run their
// own Sequence. The weights must outlive the Transformer.
#pragma once

#include <cstdint>
#include <span>

#include "common/status_or.h"
#include "examples/llama/cache_factory.h"
#include "examples/llama/device_backend.h"
#include "examples/llama/model_weights.h"
#include "examples/llama/sequence.h"

namespace kvt::llama {

struct PrefillOptions {
  bool all_logits = false;     // logits of every token [tokens][vocab], else the last one's [vocab]
  int observation_window = 0;  // > 0: call Compress with the last min(window, tokens) queries
};

class Transformer {
 public:
  // `device` (may be null: the CPU) must outlive the Transformer and its sequences.
  explicit Transformer(const ModelWeights& weights, const DeviceBackend* device = nullptr)
      : w_(weights), c_(weights.config), device_(device) {}

  const ModelConfig& config() const { return c_; }
  const DeviceBackend* device() const { return device_; }

  // The LayerShape a cache of layer `layer` is built for.
  policies::LayerShape ShapeForLayer(int layer, int max_tokens) const;

  // A fresh sequence whose layers' caches come from `factory`; `max_tokens` is a hint (0: unknown).
  StatusOr<Sequence> NewSequence(const CacheFactory& factory, int max_tokens) const;

  // See the header comment. `logits` is [tokens][vocab] or [vocab] (PrefillOptions::all_logits).
  Status Prefill(Sequence& seq, std::span<const int32_t> tokens, const PrefillOptions& options,
                 float* logits) const;

  // One token at seq.position(); `logits` [vocab].
  Status Decode(Sequence& seq, int32_t token, float* logits) const;

  // Appends K/V computed elsewhere (a prefix KV store) for the next `tokens` positions:
  // keys post-RoPE and values, each [layers][tokens][kv_heads][head_dim]. Only while
  // seq.dense_valid(). Pre-RoPE keys are recovered by the inverse rotation.
  Status AppendKv(Sequence& seq, int tokens, const float* keys, const float* values) const;

 private:
  Status CheckToken(int32_t token) const;
  Status DeviceForward(Sequence& seq, std::span<const int32_t> tokens, bool all_logits, float* logits) const;
  void CausalAttention(const Sequence& seq, int layer, const float* q, int tokens, float* out) const;

  const ModelWeights& w_;
  ModelConfig c_;
  const DeviceBackend* device_ = nullptr;
};

}  // namespace kvt::llama
