#include "host/kernels/approx_scores.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include "host/kernels/internal/simd.h"

namespace kvt::kernels {

Status ApproxScores(int kv_heads, int head_dim, const float* qhat, const int32_t* selected,
                    int channels, const StridedKeys& k, float* scores, int64_t score_stride) {
  if (kv_heads <= 0 || head_dim <= 0 || channels <= 0 || channels > head_dim || k.tokens < 0) {
    return InvalidArgument("approx scores: bad sizes");
  }
  if (k.tokens == 0) return Status::Ok();
  if (!qhat || !selected || !k.keys || !scores) return InvalidArgument("approx scores: null buffer");
  if (score_stride < k.tokens) return InvalidArgument("approx scores: score_stride < tokens");
  for (int64_t i = 0; i < static_cast<int64_t>(kv_heads) * channels; ++i) {
    if (selected[i] < 0 || selected[i] >= head_dim) return InvalidArgument("approx scores: bad channel");
  }
  constexpr int64_t kBlock = 4096;
  tbb::parallel_for(
      tbb::blocked_range2d<int, int64_t>(0, kv_heads, 1, 0, k.tokens, kBlock), [&](const auto& r) {
        for (int h = r.rows().begin(); h != r.rows().end(); ++h) {
          const int32_t* sel = selected + static_cast<int64_t>(h) * channels;
          const float* q = qhat + static_cast<int64_t>(h) * head_dim;
          const Half* base = k.keys + h * k.head_stride;
          float* out = scores + h * score_stride;
          int64_t t = r.cols().begin();
          const int64_t end = r.cols().end();
          if (k.token_stride == 1) {
            for (; t + 8 <= end; t += 8) {
              __m256 acc = _mm256_setzero_ps();
              for (int i = 0; i < channels; ++i) {
                acc = _mm256_fmadd_ps(_mm256_set1_ps(q[sel[i]]),
                                      internal::Load8(base + sel[i] * k.channel_stride + t), acc);
              }
              _mm256_storeu_ps(out + t, acc);
            }
          }
          for (; t < end; ++t) {
            float acc = 0.0f;
            for (int i = 0; i < channels; ++i) {
              acc += q[sel[i]] * internal::ToFloat(base[t * k.token_stride + sel[i] * k.channel_stride]);
            }
            out[t] = acc;
          }
        }
      });
  return Status::Ok();
}

}  // namespace kvt::kernels
