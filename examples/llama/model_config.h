// ModelConfig — the hyper-parameters of a Llama-architecture model, as read from a checkpoint.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace kvt::llama {

struct ModelConfig {
  int dim = 0;         // residual width
  int hidden_dim = 0;  // SwiGLU inner width
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (grouped-query: n_heads is a multiple)
  int vocab_size = 0;
  int seq_len = 0;     // context the model was exported with
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;

  int head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
  int kv_dim() const { return head_dim() * n_kv_heads; }
  int group() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }

  // Rejects zero/negative sizes, dim not divisible by n_heads, n_heads not a multiple of
  // n_kv_heads, odd head_dim (RoPE rotates pairs) and sizes beyond `kMaxElements` per tensor.
  Status Validate() const;

  // Elements (float count) of all weights, for file-length checks; 0 when the config is invalid.
  uint64_t WeightElements(bool shared_classifier) const;

  std::string ToString() const;

  static constexpr int64_t kMaxDim = 1 << 16;
  static constexpr int64_t kMaxLayers = 1024;
  static constexpr int64_t kMaxVocab = 1 << 20;
  static constexpr int64_t kMaxSeqLen = 1 << 24;
};

}  // namespace kvt::llama
