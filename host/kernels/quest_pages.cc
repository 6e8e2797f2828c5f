#include "host/kernels/quest_pages.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

#include "host/kernels/internal/simd.h"

namespace kvt::kernels {

Status QuestPageMinMax(const AttentionShape& shape, int page_size, const Half* keys,
                       int64_t token_stride, int64_t pages, Half* page_min, Half* page_max) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (page_size <= 0 || pages < 0) return InvalidArgument("quest: bad page size or count");
  if (pages == 0) return Status::Ok();
  if (!keys || !page_min || !page_max) return InvalidArgument("quest: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("quest: token_stride smaller than a row");
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, pages, 16), [&](const auto& r) {
    for (int64_t p = r.begin(); p != r.end(); ++p) {
      const Half* k = keys + p * page_size * token_stride;
      for (int64_t c = 0; c < row; c += 8) {
        __m256 mn = internal::Load8(k + c), mx = mn;
        for (int t = 1; t < page_size; ++t) {
          const __m256 x = internal::Load8(k + t * token_stride + c);
          mn = _mm256_min_ps(mn, x);
          mx = _mm256_max_ps(mx, x);
        }
        internal::Store8(page_min + p * row + c, mn);  // exact: inputs are fp16 already
        internal::Store8(page_max + p * row + c, mx);
      }
    }
  });
  return Status::Ok();
}

Status QuestPageScores(const AttentionShape& shape, const float* query, const Half* page_min,
                       const Half* page_max, int64_t pages, float* scores) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (pages < 0) return InvalidArgument("quest: negative page count");
  if (pages == 0) return Status::Ok();
  if (!query || !page_min || !page_max || !scores) return InvalidArgument("quest: null buffer");
  const int d = shape.head_dim, g = shape.group(), kvh = shape.kv_heads;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, pages, 64), [&](const auto& r) {
    for (int64_t p = r.begin(); p != r.end(); ++p) {
      for (int h = 0; h < kvh; ++h) {
        const Half* mn = page_min + (p * kvh + h) * d;
        const Half* mx = page_max + (p * kvh + h) * d;
        float best = -INFINITY;
        for (int j = 0; j < g; ++j) {
          const float* q = query + (static_cast<int64_t>(h) * g + j) * d;
          __m256 acc = _mm256_setzero_ps();
          for (int c = 0; c < d; c += 8) {
            const __m256 qv = _mm256_loadu_ps(q + c);
            acc = _mm256_add_ps(acc, _mm256_max_ps(_mm256_mul_ps(qv, internal::Load8(mx + c)),
                                                   _mm256_mul_ps(qv, internal::Load8(mn + c))));
          }
          best = std::max(best, internal::HorizontalSum(acc));
        }
        scores[h * pages + p] = best;
      }
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
