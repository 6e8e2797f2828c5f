#include "host/kernels/gather_rows.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstring>

namespace kvt::kernels {

Status GatherRows(const Half* src, int64_t src_tokens, int64_t token_stride, int kv_heads,
                  int head_dim, const int32_t* indices, int64_t k, Half* dst) {
  if (kv_heads <= 0 || head_dim <= 0 || k < 0 || src_tokens < 0) {
    return InvalidArgument("gather: bad sizes");
  }
  if (k == 0) return Status::Ok();
  if (!src || !indices || !dst) return InvalidArgument("gather: null buffer");
  if (token_stride < static_cast<int64_t>(kv_heads) * head_dim) {
    return InvalidArgument("gather: token_stride smaller than a token row");
  }
  for (int64_t i = 0; i < kv_heads * k; ++i) {
    if (indices[i] < 0 || indices[i] >= src_tokens) {
      return InvalidArgument("gather: index " + std::to_string(indices[i]) + " outside [0, " +
                             std::to_string(src_tokens) + ")");
    }
  }
  const size_t row_bytes = static_cast<size_t>(head_dim) * sizeof(Half);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, kv_heads * k, 256), [&](const auto& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) {
      const int64_t h = i / k;
      std::memcpy(dst + i * head_dim, src + indices[i] * token_stride + h * head_dim, row_bytes);
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
