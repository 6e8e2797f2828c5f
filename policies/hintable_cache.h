// HintableCache — optional interface of a LayerCache that can use a speculative query of its layer
// ahead of time (TailorKV: the next layer's query computed from the current layer's input hidden
// state with the next layer's W_q, so its channel rows can be prefetched while the current layer
// computes). An engine that can compute such a query calls HintQuery(q_spec) on layer l + 1 before
// layer l's attention; ignoring the interface is always correct, only slower.
// Threading: as LayerCache (one thread at a time).
#pragma once

#include "common/status.h"

namespace kvt::policies {

class HintableCache {
 public:
  virtual ~HintableCache() = default;
  //   speculative_query [q_heads][head_dim], post-RoPE at the position about to be decoded
  virtual Status HintQuery(const float* speculative_query) = 0;
};

}  // namespace kvt::policies
