// Planner — builds a model's TailorKV SequencePlan from a calibration run (Yao et al.,
// "TailorKV", Sec. 3): each layer's dense-preference score (host/kernels/dense_preference.h) over
// the prompt's last queries decides its class: score > tau → dense (attention spread over many
// tokens: keep every token, compress each), else sparse (attention concentrated on few tokens: keep
// or fetch only those). Each class becomes the LayerPlan the options give it: TailorKV's are KIVI
// 1/2-bit for dense layers and offloaded fp16 with dominant-token selection for sparse ones; any
// kind may be named (a TALE layer keeps every token in low rank and suits the dense class, a
// KVCompose layer evicts tokens and suits the sparse one), and Build validates the plan.
// With several calibration prompts the per-layer scores are averaged.
// Pure; not thread-safe (one Planner per thread).
#pragma once

#include <string>
#include <vector>

#include "common/status_or.h"
#include "host/kernels/attention_shape.h"
#include "sequence/sequence_plan.h"

namespace kvt::sequence {

struct PlannerOptions {
  float tau = 0.2f;        // the paper's threshold
  float top_frac = 0.05f;  // share of tokens whose captured mass defines "concentrated"
  int observation = 32;    // last prompt queries used per layer
  LayerPlan dense;         // what dense layers become (default: kivi, 1 bit)
  LayerPlan sparse;        // what sparse layers become (default: sparse)
  PlannerOptions() {
    dense.kind = LayerKind::kKivi;
    dense.bits = 1;
    sparse.kind = LayerKind::kSparse;
  }
};

class Planner {
 public:
  Planner(std::string model, int layers, const kernels::AttentionShape& shape, PlannerOptions options);

  // One layer of one calibration prompt: its last `window` queries [window][q_heads][head_dim]
  // (post-RoPE) and all prompt keys [tokens][kv_heads][head_dim] (post-RoPE), float32.
  Status Observe(int layer, const float* queries, int window, const float* keys, int64_t tokens);

  // Every layer must have been observed at least once.
  StatusOr<SequencePlan> Build() const;
  const std::vector<double>& score_sums() const { return sums_; }

 private:
  std::string model_;
  kernels::AttentionShape shape_;
  PlannerOptions options_;
  std::vector<double> sums_;
  std::vector<int> counts_;
};

}  // namespace kvt::sequence
