// ChannelMajorHostTier — a sparse layer's transposed key copy in the sequence's host-tier memory
// (Yao et al., "TailorKV", Sec. 4.2): [kv_heads][head_dim][capacity] fp16, channel row r (= head *
// head_dim + channel) of token t at data()[r * capacity() + t]. Used by the CPU and the GPU sparse
// layers (the GPU reads it zero-copy through device_data()).
//
// Capacity grows geometrically (max(asked, 2 * capacity, 256) tokens; less near a full memory, see
// GrowthSteps) into a new range, re-laid out, the old one freed back (HostTierArray's rules: a
// failed growth changes nothing). Threading as HostTierArray: Reserve and Clear on the owner's
// thread alone, Write within the reserved capacity from any one thread at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "host/kernels/half.h"
#include "sequence/internal/host_tier_array.h"

namespace kvt::sequence::internal {

class ChannelMajorHostTier {
 public:
  ChannelMajorHostTier(int64_t row_elems, HostTierMemory* memory) : row_(row_elems), data_(memory) {}

  // Room for `tokens` tokens per channel row, keeping the first `kept` of each.
  Status Reserve(int64_t tokens, int64_t kept, const std::function<Status()>& before_release = {}) {
    if (tokens <= cap_) return Status::Ok();
    std::vector<size_t> elems;
    for (const size_t cap : GrowthSteps(static_cast<size_t>(tokens), static_cast<size_t>(cap_), 256)) {
      elems.push_back(cap * static_cast<size_t>(row_));
    }
    const int64_t old_cap = cap_, row = row_;
    int64_t cap = 0;
    auto relayout = [&cap, old_cap, row, kept](kernels::Half* grown, const kernels::Half* old, size_t new_elems) {
      cap = static_cast<int64_t>(new_elems) / row;
      for (int64_t r = 0; kept > 0 && r < row; ++r) {
        std::memcpy(grown + r * cap, old + r * old_cap, static_cast<size_t>(kept) * sizeof(kernels::Half));
      }
    };
    KVT_RETURN_IF_ERROR(data_.Regrow(elems, relayout, before_release));
    cap_ = static_cast<int64_t>(data_.capacity()) / row_;
    data_.set_size(data_.capacity());
    return Status::Ok();
  }
  // Writes `n` token-major rows [n][row_elems] as tokens [first, first + n) (within capacity).
  // Transposed in runs of up to kTokenRun tokens that end on a run boundary, so that a bulk write
  // fills each channel row one 64-byte line at a time instead of one element per line (rows are
  // capacity * 2 bytes apart, a power of two after doubling: element-wise, every token's 1024
  // writes fall into a few cache sets). Measured here, 16K tokens of 1024 channels: 242 ms
  // element-wise, 13 ms in runs.
  void Write(const kernels::Half* rows, int64_t first, int64_t n) {
    KVT_CHECK(first + n <= cap_, "transposed keys written past their reserved capacity");
    constexpr int64_t kTokenRun = 64 / sizeof(kernels::Half);
    kernels::Half* cm = data_.data();
    for (int64_t t0 = 0; t0 < n;) {
      const int64_t run = std::min(n - t0, kTokenRun - (first + t0) % kTokenRun);
      for (int64_t r = 0; r < row_; ++r) {
        kernels::Half* dst = cm + r * cap_ + first + t0;
        const kernels::Half* src = rows + t0 * row_ + r;
        for (int64_t t = 0; t < run; ++t) dst[t] = src[t * row_];
      }
      t0 += run;
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
