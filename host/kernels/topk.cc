#include "host/kernels/topk.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <functional>

namespace kvt::kernels {

size_t TopKWorkspaceWords(int64_t rows, int64_t n) {
  return static_cast<size_t>(rows) * static_cast<size_t>(n);
}

Status TopK(const float* values, int64_t rows, int64_t n, int64_t row_stride, int64_t k,
            int32_t* indices, std::span<uint32_t> workspace) {
  if (rows < 0 || n < 0 || k < 0 || k > n) return InvalidArgument("topk: need 0 <= k <= n");
  if (n > INT32_MAX) return InvalidArgument("topk: row longer than int32 indices allow");
  if (rows == 0 || k == 0) return Status::Ok();
  if (!values || !indices) return InvalidArgument("topk: null buffer");
  if (row_stride < n) return InvalidArgument("topk: row_stride < n");
  if (workspace.size() < TopKWorkspaceWords(rows, n)) return InvalidArgument("topk: workspace too small");
  tbb::parallel_for(int64_t{0}, rows, [&](int64_t r) {
    const float* v = values + r * row_stride;
    uint32_t* keys = workspace.data() + r * n;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t b;
      std::memcpy(&b, v + i, 4);
      keys[i] = TopKOrderKey(b);
    }
    // Threshold: the k-th largest key. Everything above it is taken; ties at it go to the
    // smallest indices, so the result does not depend on the selection algorithm.
    std::nth_element(keys, keys + (k - 1), keys + n, std::greater<uint32_t>());
    const uint32_t threshold = keys[k - 1];
    int64_t above = 0;
    for (int64_t i = 0; i < k - 1; ++i) above += keys[i] > threshold;
    int64_t ties_left = k - above;
    int32_t* out = indices + r * k;
    int64_t m = 0;
    for (int64_t i = 0; i < n && m < k; ++i) {
      uint32_t b;
      std::memcpy(&b, v + i, 4);
      const uint32_t key = TopKOrderKey(b);
      if (key > threshold) {
        out[m++] = static_cast<int32_t>(i);
      } else if (key == threshold && ties_left > 0) {
        out[m++] = static_cast<int32_t>(i);
        --ties_left;
      }
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
