// EvaluatePerplexity — negative log-likelihood of a token stream with a KV method in the loop.
//
// The stream is cut into consecutive, non-overlapping windows of `window` tokens. Each window is
// a fresh sequence (one LayerCache per layer from the factory) processed as in serving:
//   1. prefill: its first p = min(prefill, len-1) tokens run as one batch with exact causal
//      attention; their K/V are appended to the caches, then each layer's Compress receives the
//      last `observation_window` prefill queries (methods compress or classify here);
//   2. decode: every later token runs alone, its attention read from the method's cache (Attend).
// Every token after a window's first is scored from the logits of the position before it
// (len-1 tokens per window); the decode part is also reported on its own, since only it can
// differ between methods. prefill = 0 decodes the whole window through the cache (no Compress).
// Windows run in parallel (oneTBB) and are summed in order, so results do not depend on threads.
#pragma once

#include <cstdint>
#include <span>

#include "common/status_or.h"
#include "examples/llama/cache_factory.h"
#include "examples/llama/transformer.h"

namespace kvt::llama {

struct PerplexityOptions {
  int window = 512;
  int prefill = 128;
  int observation_window = 32;
  bool parallel = true;
};

struct PerplexityResult {
  int64_t tokens = 0;          // scored tokens
  double nll_sum = 0.0;        // nats
  int64_t decode_tokens = 0;   // scored from decode-step logits (attention through the cache)
  double decode_nll_sum = 0.0;
  int windows = 0;
  // At each window's end, over all layers: stored bytes per appended token and kept/appended
  // tokens, averaged over windows.
  double stored_bytes_per_token = 0.0;
  double kept_fraction = 0.0;
  double seconds = 0.0;

  double nll_per_token() const { return tokens ? nll_sum / tokens : 0.0; }
  double ppl() const;
  double decode_nll_per_token() const { return decode_tokens ? decode_nll_sum / decode_tokens : 0.0; }
};

StatusOr<PerplexityResult> EvaluatePerplexity(const Transformer& model,
                                              std::span<const int32_t> tokens,
                                              const CacheFactory& caches,
                                              const PerplexityOptions& options);

// -log softmax(logits)[target], in double.
double TokenNll(const float* logits, int vocab, int32_t target);

}  // namespace kvt::llama
