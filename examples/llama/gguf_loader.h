// Loader for Llama-architecture GGUF checkpoints (llama.cpp's tensor names, F32 or F16 tensors).
//
// Reads llama.* hyper-parameters, the blk.N.* tensors (converted to float32 into llama2.c's
// layout: GGUF stores a matrix [out][in] with dims {in, out}, the same bytes), and the tokenizer
// embedded as tokenizer.ggml.tokens / .scores (SentencePiece's U+2581 turned back into ' ').
// Q/K weights are used as stored: GGUF's llama RoPE rotates interleaved pairs, as llama2.c does.
#pragma once

#include <string>

#include "common/status_or.h"
#include "examples/llama/gguf_file.h"
#include "examples/llama/loaded_model.h"

namespace kvt::llama {

// The tokenizer is absent when the file embeds none.
StatusOr<LoadedModel> ModelFromGguf(const GgufFile& file);
StatusOr<LoadedModel> LoadGgufModel(const std::string& path);

}  // namespace kvt::llama
