// ModelWeights — the float32 weights of a Llama-architecture model, in llama2.c's layout.
//
// Every matrix is row-major [out][in]; per-layer tensors are stacked [n_layers][...]:
//   tok_emb   [vocab][dim]            rms_att [L][dim]        rms_ffn [L][dim]
//   wq        [L][dim][dim]           wk, wv  [L][kv_dim][dim] wo     [L][dim][dim]
//   w1, w3    [L][hidden][dim]        w2      [L][dim][hidden]
//   rms_final [dim]                   wcls    [vocab][dim] (empty when shared with tok_emb)
// Immutable after loading; safe to share between threads.
#pragma once

#include <vector>

#include "common/status.h"
#include "examples/llama/model_config.h"

namespace kvt::llama {

struct ModelWeights {
  ModelConfig config;
  std::vector<float> tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;

  // The classifier: wcls when the model has its own, else the embedding.
  const float* classifier() const { return wcls.empty() ? tok_emb.data() : wcls.data(); }

  // Sizes every tensor for `config` (zero-filled).
  void Allocate(const ModelConfig& c, bool shared_classifier);

  // Checks every tensor has the size the config implies and every value is finite.
  Status Validate() const;
};

}  // namespace kvt::llama
