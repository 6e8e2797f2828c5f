#include "host/kernels/lowrank/observed_attention_scores.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "host/kernels/lowrank/internal/fast_math.h"

namespace kvt::kernels::lowrank {

size_t ObservedAttentionScoresWorkspaceBytes(const ObservedAttentionShape& s) {
  return static_cast<size_t>(std::max(0, s.num_kv_heads)) * 2 *
         static_cast<size_t>(std::max<int64_t>(0, s.tokens)) * sizeof(float);
}

Status ObservedAttentionScores(const ObservedAttentionShape& s, const float* keys,
                               const float* queries, ObservationReduce reduce, float* scores,
                               void* workspace, size_t workspace_bytes) {
  if (s.num_kv_heads < 1 || s.num_q_heads < s.num_kv_heads || s.num_q_heads % s.num_kv_heads != 0) {
    return InvalidArgument("ObservedAttentionScores: q_heads must be a multiple of kv_heads");
  }
  if (s.head_dim < 1 || s.tokens < 1 || s.window < 1 || s.window > s.tokens) {
    return InvalidArgument("ObservedAttentionScores: need head_dim >= 1 and 1 <= window <= tokens");
  }
  if (keys == nullptr || queries == nullptr || scores == nullptr) {
    return InvalidArgument("ObservedAttentionScores: null pointer");
  }
  if (workspace == nullptr || workspace_bytes < ObservedAttentionScoresWorkspaceBytes(s)) {
    return InvalidArgument("ObservedAttentionScores: workspace too small");
  }
  const int d = s.head_dim;
  const int group = s.num_q_heads / s.num_kv_heads;
  const float scale = s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t n = s.tokens;
  float* ws = static_cast<float*>(workspace);
  tbb::parallel_for(tbb::blocked_range<int>(0, s.num_kv_heads), [&](const tbb::blocked_range<int>& r) {
    for (int h = r.begin(); h < r.end(); ++h) {
      float* row = ws + static_cast<size_t>(h) * 2 * n;  // probabilities of one query
      float* red = row + n;                              // reduction over the window, one q head
      float* out = scores + static_cast<size_t>(h) * n;
      std::fill(out, out + n, 0.0f);
      for (int g = 0; g < group; ++g) {
        const int qh = h * group + g;
        std::fill(red, red + n, 0.0f);
        for (int w = 0; w < s.window; ++w) {
          const float* q = queries + (static_cast<size_t>(w) * s.num_q_heads + qh) * d;
          const int64_t visible = n - s.window + w + 1;
          float m = -INFINITY;
          for (int64_t t = 0; t < visible; ++t) {
            const float* k = keys + (static_cast<size_t>(t) * s.num_kv_heads + h) * d;
            float dot = 0.0f;
            for (int i = 0; i < d; ++i) dot += q[i] * k[i];
            row[t] = dot * scale;
            m = std::max(m, row[t]);
          }
          float sum = 0.0f;
          for (int64_t t = 0; t < visible; ++t) {
            row[t] = internal::FastExp(row[t] - m);
            sum += row[t];
          }
          const float inv = 1.0f / sum;
          if (reduce == ObservationReduce::kMax) {
            for (int64_t t = 0; t < visible; ++t) red[t] = std::max(red[t], row[t] * inv);
          } else {
            for (int64_t t = 0; t < visible; ++t) red[t] += row[t] * inv;
          }
        }
        for (int64_t t = 0; t < n; ++t) out[t] += red[t] / static_cast<float>(group);
      }
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels::lowrank
