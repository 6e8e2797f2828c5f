// AttentionShape — the head geometry every attention-like kernel shares (CPU and CUDA).
// Grouped-query: q head j reads KV head j / (q_heads / kv_heads).
#pragma once

#include <string>

#include "common/status.h"

namespace kvt::kernels {

struct AttentionShape {
  int q_heads = 1;
  int kv_heads = 1;
  int head_dim = 8;  // a multiple of 8 (every vector path loads 8 channels at a time)

  constexpr int group() const { return q_heads / kv_heads; }

  Status Validate() const {
    if (q_heads <= 0 || kv_heads <= 0 || head_dim <= 0) {
      return InvalidArgument("attention shape: heads and head_dim must be positive");
    }
    if (q_heads % kv_heads != 0) {
      return InvalidArgument("attention shape: q_heads " + std::to_string(q_heads) +
                             " is not a multiple of kv_heads " + std::to_string(kv_heads));
    }
    if (head_dim % 8 != 0 || head_dim > 1024) {
      return InvalidArgument("attention shape: head_dim " + std::to_string(head_dim) +
                             " must be a multiple of 8 and at most 1024");
    }
    return Status::Ok();
  }
};

}  // namespace kvt::kernels
