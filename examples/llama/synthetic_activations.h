// Realistic-shape mode — GENERATED (not from a real model) per-layer Q/K/V with the shapes of a
// production model, for performance work where stories260K's head_dim 8 is too small.
// Every figure measured on these tensors must be labelled "generated activations, <shape>".
//
// Default shape: Llama-3.1-8B (32 layers, 32 query heads, 8 KV heads, head_dim 128, RoPE base
// 500000; Llama-3.1's long-context frequency scaling is not modelled).
//
// How the tensors are made (deterministic in (seed, layer)): per KV head, a latent state
// h_t ∈ R^rank follows an AR(1) process (h_t = ρ·h_{t-1} + √(1-ρ²)·ε_t), so neighbouring tokens
// are correlated; generated projection weights map it to K (pre-RoPE), V and the group's queries.
// Keys get a fixed per-channel offset with a few large "outlier" channels (the structure KIVI
// quantizes per channel); queries share a component of the key latent, so attention is peaked
// rather than uniform; a few "sink" tokens at the start get keys aligned with the queries.
// Then RoPE at positions first_position.. is applied to Q and K.
// Shapes: q [tokens][q_heads][head_dim]; k_pre, k, v [tokens][kv_heads][head_dim].
#pragma once

#include <cstdint>
#include <vector>

#include "common/status_or.h"

namespace kvt::llama {

struct SyntheticShape {
  int layers = 32;
  int q_heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  float rope_theta = 500000.0f;
  int rank = 16;              // latent dimension per KV head
  float correlation = 0.9f;   // ρ of the AR(1) latent
  int outlier_channels = 4;   // per KV head, keys only
  float outlier_scale = 8.0f;
  int sink_tokens = 4;

  static SyntheticShape Llama31_8B() { return {}; }
  Status Validate() const;
};

struct SyntheticLayerQkv {
  int layer = 0;
  int tokens = 0;
  std::vector<float> q, k_pre, k, v;
};

// One layer's generated activations for `tokens` tokens at positions first_position...
StatusOr<SyntheticLayerQkv> GenerateSyntheticQkv(const SyntheticShape& shape, int layer, int tokens,
                                                 uint64_t seed, int first_position = 0);

}  // namespace kvt::llama
