// ChannelMajorHostTier — a sparse layer's transposed key copy in the sequence's host-tier memory
// (Yao et al., "TailorKV", Sec. 4.2): [kv_heads][head_dim][capacity] fp16, channel row r (= head *
// head_dim + channel) of token t at data()[r * capacity() + t]. Used by the CPU and the GPU sparse
// layers (the GPU reads it zero-copy through device_data()).
//
// Capacity grows geometrically (max(asked, 2 * capacity, 256) tokens) into a new range, re-laid
// out, the old one freed back (HostTierArray's rules: a failed growth changes nothing). Threading
// as HostTierArray: Reserve and Clear on the owner's thread alone, Write within the reserved
// capacity from any one thread at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>

#include "host/kernels/half.h"
#include "sequence/internal/host_tier_array.h"

namespace kvt::sequence::internal {

class ChannelMajorHostTier {
 public:
  ChannelMajorHostTier(int64_t row_elems, HostTierMemory* memory) : row_(row_elems), data_(memory) {}

  // Room for `tokens` tokens per channel row, keeping the first `kept` of each.
  Status Reserve(int64_t tokens, int64_t kept, const std::function<Status()>& before_release = {}) {
    if (tokens <= cap_) return Status::Ok();
    const int64_t cap = std::max<int64_t>(tokens, std::max<int64_t>(2 * cap_, 256));
    const int64_t old_cap = cap_, row = row_;
    auto relayout = [=](kernels::Half* grown, const kernels::Half* old) {
      for (int64_t r = 0; kept > 0 && r < row; ++r) {
        std::memcpy(grown + r * cap, old + r * old_cap, static_cast<size_t>(kept) * sizeof(kernels::Half));
      }
    };
    KVT_RETURN_IF_ERROR(data_.Regrow(static_cast<size_t>(row_ * cap), relayout, before_release));
    data_.set_size(static_cast<size_t>(row_ * cap));
    cap_ = cap;
    return Status::Ok();
  }
  // Writes `n` token-major rows [n][row_elems] as tokens [first, first + n) (within capacity).
  void Write(const kernels::Half* rows, int64_t first, int64_t n) {
    KVT_CHECK(first + n <= cap_, "transposed keys written past their reserved capacity");
    kernels::Half* cm = data_.data();
    for (int64_t t = 0; t < n; ++t) {
      const kernels::Half* src = rows + t * row_;
      for (int64_t r = 0; r < row_; ++r) cm[r * cap_ + first + t] = src[r];
    }
  }
  void Clear() {
    data_.Clear();
    cap_ = 0;
  }

  const kernels::Half* data() const { return data_.data(); }
  const kernels::Half* device_data() const { return data_.device_data(); }
  kernels::Half* mutable_device_data() const { return data_.mutable_device_data(); }  // device writers, within capacity
  int64_t capacity() const { return cap_; }
  uint64_t bytes() const { return static_cast<uint64_t>(row_ * cap_) * sizeof(kernels::Half); }

 private:
  int64_t row_;
  HostTierArray<kernels::Half> data_;
  int64_t cap_ = 0;
};

}  // namespace kvt::sequence::internal
