// KvComposePlanner — KVCompose's global budget: turns every layer's attention scores into the
// number of tokens each layer (and head) keeps.
//
// Each layer submits, after prefill, its per-head token scores s[h][t] (max over the observation
// queries of the attention weight, mean over the query heads of KV head h, plus the mean of that
// over KV heads — see KvComposeCache). The planner then:
//   structured (composite tokens): sorts each head's scores; the j-th composite token of layer l has
//     score c_l[j] = mean_h sorted_h[j]; layer 0 takes c_0[j] = max_l c_l[j] (layer 0's attention is
//     near-uniform, which would otherwise starve it); the n = round(ratio * sum_l T_l) largest
//     composite scores over all layers are kept, and layer l's count is how many of them are its own.
//     Every head of layer l keeps that many tokens (its own best ones).
//   unstructured: the same over individual (layer, head, token) scores, n * kv_heads of them, layer
//     0's sorted per-head sequences replaced by the element-wise max across layers; each head gets
//     its own count.
// Counts sum exactly to the budget (ties broken by layer, then rank, so the kept set per layer is
// always a prefix of its sorted scores).
//
// Wiring: one planner per sequence, shared (shared_ptr) by that sequence's L layer caches
// (MakeKvComposeCaches does it). The plan exists once all L layers have submitted; each layer cache
// applies its counts at its next Append or Attend. Thread-safe (a mutex): layers may run on
// different threads.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "common/status_or.h"

namespace kvt::policies::lowrank {

class KvComposePlanner {
 public:
  KvComposePlanner(int num_layers, int num_kv_heads, float ratio, bool structured);

  // scores: [kv_heads][tokens]. INVALID_ARGUMENT for a bad layer, a size mismatch or a second
  // submission for the same layer.
  Status Submit(int layer, const std::vector<float>& scores, int64_t tokens);

  bool ready() const;
  // Per-head kept counts of `layer` ([kv_heads]); NOT_FOUND until ready.
  StatusOr<std::vector<int64_t>> HeadCounts(int layer) const;
  // Tokens kept per layer (the per-head mean for unstructured); the budget n; empty until ready.
  std::vector<double> LayerCounts() const;
  int64_t budget() const;

 private:
  void Plan();  // with mu_ held, once every layer has submitted

  const int num_layers_, kv_;
  const float ratio_;
  const bool structured_;
  mutable std::mutex mu_;
  int submitted_ = 0;
  std::vector<std::vector<float>> sorted_;  // [layer][kv][tokens] descending per head
  std::vector<int64_t> tokens_;             // [layer]
  std::vector<std::vector<int64_t>> counts_;  // [layer][kv]
  int64_t budget_ = 0;
  bool ready_ = false;
};

}  // namespace kvt::policies::lowrank
