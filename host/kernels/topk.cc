#include "host/kernels/topk.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <functional>

namespace kvt::kernels {
namespace {

constexpr int kBucketBits = 12;
constexpr int kShift = 32 - kBucketBits;

// Writes the order keys of v[0..n) to keys and their top-bit histogram to hist.
void KeysAndHistogram(const float* v, int64_t n, uint32_t* keys, uint32_t* hist) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, v + i, 4);
    keys[i] = TopKOrderKey(b);
    ++hist[keys[i] >> kShift];
  }
}

// The k-th largest order key of keys[0..n) (1 <= k <= n) and how many keys exceed it, given the
// histogram of their top 12 bits: only the keys in the bucket that holds the k-th largest are
// selected exactly (compacted into `scratch`, which may be `keys` itself: it is overwritten). That
// bucket is a small part of the row (about 1/32 of 128K uniform scores), so the cost is two linear
// passes plus a small nth_element instead of an nth_element over the whole row.
uint32_t KthLargestKey(const uint32_t* keys, const uint32_t* hist, int64_t n, int64_t k, uint32_t* scratch,
                       int64_t* above) {
  int64_t higher = 0;  // keys in buckets above `b`
  int b = (1 << kBucketBits) - 1;
  while (higher + hist[b] < k) higher += hist[b--];
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if ((keys[i] >> kShift) == static_cast<uint32_t>(b)) scratch[m++] = keys[i];
  }
  const int64_t rank = k - higher;  // 1-based rank of the threshold inside the bucket
  std::nth_element(scratch, scratch + (rank - 1), scratch + m, std::greater<uint32_t>());
  const uint32_t threshold = scratch[rank - 1];
  int64_t in_bucket_above = 0;
  for (int64_t i = 0; i < rank - 1; ++i) in_bucket_above += scratch[i] > threshold;
  *above = higher + in_bucket_above;
  return threshold;
}

}  // namespace

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
    uint32_t hist[1 << kBucketBits] = {};
    KeysAndHistogram(v, n, keys, hist);
    // Threshold: the k-th largest key. Everything above it is taken; ties at it go to the
    // smallest indices, so the result does not depend on the selection algorithm.
    int64_t above = 0;
    const uint32_t threshold = KthLargestKey(keys, hist, n, k, /*scratch=*/keys, &above);
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
