// Generate — llama2.c-compatible text generation: encode the prompt with BOS, run `steps`
// positions (BOS included, capped at the model's context), prefill the prompt in one batch and
// decode the rest through the layer caches; stop early when the model emits BOS or EOS.
// The text is the decoded continuation of BOS: the prompt's own text followed by the generated text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status_or.h"
#include "examples/llama/cache_factory.h"
#include "examples/llama/prefix_kv_store.h"
#include "examples/llama/tokenizer.h"
#include "examples/llama/transformer.h"

namespace kvt::llama {

struct GenerateOptions {
  std::string prompt;
  int steps = 256;          // positions including BOS
  float temperature = 0.0f;
  uint64_t seed = 0;
  int observation_window = 0;  // > 0: Compress after the prompt's prefill with its last queries
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> tokens;  // the whole sequence, BOS first
  int prompt_tokens = 0;
  int reused_prefix_tokens = 0;  // taken from the prefix store instead of computed
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  int decoded_tokens = 0;
};

// `prefix_store` (may be null): the prompt's longest stored prefix is retrieved instead of
// computed, and the prompt's KV is offered back after the prefill.
StatusOr<GenerateResult> Generate(const Transformer& model, const Tokenizer& tokenizer,
                                  const CacheFactory& caches, const GenerateOptions& options,
                                  PrefixKvStore* prefix_store = nullptr);

}  // namespace kvt::llama
