// ChannelMajorKeys — the transposed key copy TailorKV scores dominant tokens from (Yao et al.,
// "TailorKV", Sec. 4.2): [kv_heads][head_dim][capacity] fp16, channel rows of all tokens so far,
// grown geometrically. Shared by policies/tailorkv and the sequence plane's sparse layers (whose
// host tier it is). Not thread-safe; growth reallocates, so pointers from data() are valid until
// the next Append.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "host/kernels/half.h"
#include "policies/internal/half_rows.h"

namespace kvt::policies::internal {

class ChannelMajorKeys {
 public:
  explicit ChannelMajorKeys(int64_t row_elems) : row_(row_elems) {}

  // Appends rows [first, first + n) of `keys` (first == tokens() so far).
  void Append(const HalfRows& keys, int64_t first, int64_t n) {
    const int64_t need = first + n;
    if (need > cap_) {
      const int64_t cap = std::max<int64_t>(need, std::max<int64_t>(2 * cap_, 256));
      std::vector<kernels::Half> grown(static_cast<size_t>(row_ * cap));
      for (int64_t r = 0; r < row_; ++r) {
        std::copy(data_.begin() + r * cap_, data_.begin() + r * cap_ + first, grown.begin() + r * cap);
      }
      data_ = std::move(grown);
      cap_ = cap;
    }
    for (int64_t t = first; t < need; ++t) {
      const kernels::Half* src = keys.row(t);
      for (int64_t r = 0; r < row_; ++r) data_[r * cap_ + t] = src[r];
    }
  }
  void Clear() {
    data_ = {};
    cap_ = 0;
  }

  // Channel row r (= head * head_dim + channel) starts at data() + r * capacity().
  const kernels::Half* data() const { return data_.data(); }
  int64_t capacity() const { return cap_; }
  uint64_t bytes() const { return data_.size() * sizeof(kernels::Half); }

 private:
  int64_t row_;
  std::vector<kernels::Half> data_;
  int64_t cap_ = 0;
};

}  // namespace kvt::policies::internal
