#include "examples/llama/model_config.h"

namespace kvt::llama {

Status ModelConfig::Validate() const {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("model config " + ToString() + ": " + why);
  };
  if (dim <= 0 || dim > kMaxDim) return bad("dim out of range");
  if (hidden_dim <= 0 || hidden_dim > 4 * kMaxDim) return bad("hidden_dim out of range");
  if (n_layers <= 0 || n_layers > kMaxLayers) return bad("n_layers out of range");
  if (n_heads <= 0 || n_heads > dim) return bad("n_heads out of range");
  if (n_kv_heads <= 0 || n_kv_heads > n_heads) return bad("n_kv_heads out of range");
  if (dim % n_heads != 0) return bad("dim is not a multiple of n_heads");
  if (n_heads % n_kv_heads != 0) return bad("n_heads is not a multiple of n_kv_heads");
  if (head_dim() % 2 != 0) return bad("head_dim is odd (RoPE rotates pairs)");
  if (vocab_size <= 0 || vocab_size > kMaxVocab) return bad("vocab_size out of range");
  if (seq_len <= 0 || seq_len > kMaxSeqLen) return bad("seq_len out of range");
  if (!(rope_theta > 0.0f)) return bad("rope_theta must be positive");
  if (!(rms_eps > 0.0f)) return bad("rms_eps must be positive");
  return Status::Ok();
}

uint64_t ModelConfig::WeightElements(bool shared_classifier) const {
  if (!Validate().ok()) return 0;
  const uint64_t d = dim, h = hidden_dim, L = n_layers, kv = kv_dim(), v = vocab_size;
  uint64_t per_layer = d + d * d + 2 * kv * d + d * d + d + 3 * h * d;
  return v * d + L * per_layer + d + (shared_classifier ? 0 : v * d);
}

std::string ModelConfig::ToString() const {
  return "{dim " + std::to_string(dim) + ", hidden " + std::to_string(hidden_dim) + ", layers " +
         std::to_string(n_layers) + ", heads " + std::to_string(n_heads) + ", kv_heads " +
         std::to_string(n_kv_heads) + ", vocab " + std::to_string(vocab_size) + ", seq_len " +
         std::to_string(seq_len) + "}";
}

}  // namespace kvt::llama
