// Sequence — the state of one sequence in the engine: a LayerCache per layer, the next position,
// and (while only prefills have run) a dense copy of the prompt's K/V for exact prefill attention.
// Created by Transformer::NewSequence; move-only; used by one thread at a time. Sequences are
// independent, so several can run on different threads over one shared Transformer.
// A sequence of a Transformer with a DeviceBackend keeps its K/V on the device instead
// (on_device()): its layer caches stay empty and its dense K/V are not kept on the host.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "examples/llama/activation_observer.h"
#include "examples/llama/device_backend.h"
#include "policies/layer_cache.h"

namespace kvt::llama {

class Sequence {
 public:
  Sequence() = default;
  Sequence(Sequence&&) = default;
  Sequence& operator=(Sequence&&) = default;

  int64_t position() const { return position_; }
  int num_layers() const { return static_cast<int>(caches_.size()); }
  policies::LayerCache& cache(int layer) { return *caches_[layer]; }
  const policies::LayerCache& cache(int layer) const { return *caches_[layer]; }

  // True when the forward pass and the K/V cache run on a DeviceBackend.
  bool on_device() const { return device_ != nullptr; }

  // True while every token was prefilled (no Decode yet): dense_keys/values hold them all.
  bool dense_valid() const { return dense_valid_; }
  // [tokens][kv_heads][head_dim] post-RoPE keys / values of layer `layer` (while dense_valid()).
  const std::vector<float>& dense_keys(int layer) const { return dense_k_[layer]; }
  const std::vector<float>& dense_values(int layer) const { return dense_v_[layer]; }

  // Not owned; may be null. Sees every layer's Q/K/V from now on.
  void set_observer(ActivationObserver* observer) { observer_ = observer; }

  // Sum of the caches' stored bytes and kept tokens over layers.
  uint64_t stored_bytes() const;
  int64_t kept_tokens() const;

 private:
  friend class Transformer;
  std::vector<std::unique_ptr<policies::LayerCache>> caches_;
  int64_t position_ = 0;
  bool dense_valid_ = true;
  std::vector<std::vector<float>> dense_k_, dense_v_;  // [layer][tokens][kv_dim]
  ActivationObserver* observer_ = nullptr;
  std::unique_ptr<DeviceSequenceState> device_;  // set: the device runs this sequence
  // Decode scratch, sized once.
  std::vector<float> x_, xb_, q_, k_, k_pre_, v_, att_, hb_, hb2_;
};

inline uint64_t Sequence::stored_bytes() const {
  uint64_t b = device_ ? device_->stored_bytes() : 0;
  for (const auto& c : caches_) b += c->stored_bytes();
  return b;
}

inline int64_t Sequence::kept_tokens() const {
  int64_t t = device_ ? device_->tokens() * static_cast<int64_t>(caches_.size()) : 0;
  for (const auto& c : caches_) t += c->kept_tokens();
  return t;
}

}  // namespace kvt::llama
