// LoadModel — opens a checkpoint in either supported format, chosen by content (GGUF magic),
// and a tokenizer: the explicit `tokenizer_path` when given (llama2.c format, its size checked
// against the model's vocabulary), else the one embedded in a GGUF; INVALID_ARGUMENT when
// neither exists.
#pragma once

#include <string>

#include "common/status_or.h"
#include "examples/llama/loaded_model.h"

namespace kvt::llama {

// Weights only (tokenizer filled in when the file embeds one).
StatusOr<LoadedModel> LoadModelFile(const std::string& model_path);

// Weights and a tokenizer (required).
StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& model_path,
                                             const std::string& tokenizer_path);

}  // namespace kvt::llama
