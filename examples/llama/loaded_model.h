// LoadedModel — weights plus the tokenizer a checkpoint carries (GGUF embeds one, llama2.c not).
#pragma once

#include <optional>

#include "examples/llama/model_weights.h"
#include "examples/llama/tokenizer.h"

namespace kvt::llama {

struct LoadedModel {
  ModelWeights weights;
  std::optional<Tokenizer> tokenizer;
};

}  // namespace kvt::llama
