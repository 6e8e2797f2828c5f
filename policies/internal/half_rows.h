// HalfRows — a growable token-major fp16 store, [tokens][kv_heads][head_dim], the full-precision
// form several methods keep (StreamingLLM's windows, Quest, SnapKV, TailorKV's offloaded layers).
// Not thread-safe. Growth reallocates: pointers from data() are valid until the next Append.
#pragma once

#include <cstdint>
#include <vector>

#include "host/kernels/convert.h"
#include "host/kernels/half.h"

namespace kvt::policies::internal {

class HalfRows {
 public:
  explicit HalfRows(int64_t row_elems = 0) : row_(row_elems) {}

  void Append(const float* rows, int64_t tokens) {
    const size_t old = data_.size();
    data_.resize(old + static_cast<size_t>(tokens * row_));
    kernels::ConvertToHalf(rows, data_.data() + old, tokens * row_);
  }
  void AppendHalf(const kernels::Half* rows, int64_t tokens) {
    data_.insert(data_.end(), rows, rows + tokens * row_);
  }
  // Overwrites row t (t < tokens()).
  void Set(int64_t t, const float* row) { kernels::ConvertToHalf(row, data_.data() + t * row_, row_); }
  void Clear() { data_.clear(); }
  void Reserve(int64_t tokens) { data_.reserve(static_cast<size_t>(tokens * row_)); }

  const kernels::Half* data() const { return data_.data(); }
  const kernels::Half* row(int64_t t) const { return data_.data() + t * row_; }
  int64_t tokens() const { return row_ == 0 ? 0 : static_cast<int64_t>(data_.size()) / row_; }
  int64_t row_elems() const { return row_; }
  uint64_t bytes() const { return data_.size() * sizeof(kernels::Half); }

 private:
  int64_t row_;
  std::vector<kernels::Half> data_;
};

}  // namespace kvt::policies::internal
