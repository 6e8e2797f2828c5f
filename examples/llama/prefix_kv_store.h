// PrefixKvStore — the engine's seam to the block plane (prefix reuse through libkvtier).
//
// Before a prompt's prefill the engine asks for the longest stored prefix of its tokens, takes
// that prefix's K/V instead of computing it, and prefills only the rest; after the prefill it
// offers the prompt's K/V back. An implementation over libkvtier maps this onto chunk lookup /
// retrieve / store (chunk keys chain token ids with a model fingerprint); tests use an in-memory
// one. A store may keep any chunk-aligned part of what it is offered, and a failed or partial
// retrieval is a miss: the engine then computes the prefix itself, so a store never changes
// results, only work.
// KV layout: [layers][2][tokens][kv_heads][head_dim] float32, keys post-RoPE (positions 0..n-1).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status_or.h"

namespace kvt::llama {

struct PrefixKv {
  int layers = 0, tokens = 0, kv_heads = 0, head_dim = 0;
  std::vector<float> data;  // [layers][2][tokens][kv_heads][head_dim]

  size_t LayerStride() const { return 2ull * tokens * kv_heads * head_dim; }
  float* keys(int layer) { return data.data() + layer * LayerStride(); }
  float* values(int layer) { return keys(layer) + LayerStride() / 2; }
  const float* keys(int layer) const { return data.data() + layer * LayerStride(); }
  const float* values(int layer) const { return keys(layer) + LayerStride() / 2; }
};

class PrefixKvStore {
 public:
  virtual ~PrefixKvStore() = default;
  // Tokens of the longest stored prefix of `tokens` (0 when none). Must not block past its deadline.
  virtual StatusOr<int> Lookup(std::span<const int32_t> tokens) = 0;
  // The K/V of the first `n` tokens (n <= what Lookup returned). An error is a miss.
  virtual StatusOr<PrefixKv> Retrieve(std::span<const int32_t> tokens, int n) = 0;
  // Offers the K/V of `tokens` (kv.tokens == tokens.size()).
  virtual Status Store(std::span<const int32_t> tokens, const PrefixKv& kv) = 0;
};

}  // namespace kvt::llama
