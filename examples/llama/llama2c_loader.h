// Loader for llama2.c's legacy checkpoint format (the format of stories260K.bin).
//
// Layout, little-endian: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
// then the float32 tensors in ModelWeights' order up to rms_final, then two legacy RoPE tables
// [seq_len][head_dim/2] (skipped), then wcls [vocab][dim] only when vocab_size was written negative.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status_or.h"
#include "examples/llama/model_weights.h"

namespace kvt::llama {

// Parses a checkpoint held in memory. `source` names it in error messages. Rejects a bad header
// (CORRUPTION / INVALID_ARGUMENT) and a file shorter than its header implies (CORRUPTION).
StatusOr<ModelWeights> ParseLlama2cCheckpoint(const std::vector<uint8_t>& bytes,
                                              const std::string& source);

StatusOr<ModelWeights> LoadLlama2cCheckpoint(const std::string& path);

}  // namespace kvt::llama
