#include "host/kernels/snapkv_scores.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "host/kernels/internal/attention_inner.h"

namespace kvt::kernels {
namespace {

constexpr int64_t kChunk = 512;

size_t PerHeadFloats(const AttentionShape& s, int window, int64_t tokens) {
  const size_t rows = static_cast<size_t>(s.group()) * window;
  return rows * s.head_dim + rows * kChunk + 2 * rows + static_cast<size_t>(tokens);
}

}  // namespace

size_t SnapKvWorkspaceFloats(const AttentionShape& shape, int window, int64_t tokens) {
  return static_cast<size_t>(shape.kv_heads) * PerHeadFloats(shape, window, tokens);
}

Status SnapKvScores(const AttentionShape& shape, const float* obs, int window, const Half* keys,
                    int64_t tokens, int64_t token_stride, int pool, float* scores,
                    std::span<float> workspace) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (window <= 0 || tokens <= window) return InvalidArgument("snapkv: need 0 < window < tokens");
  if (pool <= 0 || pool % 2 == 0) return InvalidArgument("snapkv: pool must be odd and positive");
  if (!obs || !keys || !scores) return InvalidArgument("snapkv: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("snapkv: token_stride smaller than a row");
  if (workspace.size() < SnapKvWorkspaceFloats(shape, window, tokens)) {
    return InvalidArgument("snapkv: workspace too small");
  }
  const int g = shape.group(), d = shape.head_dim;
  const int rows = g * window;
  const int64_t prefix = tokens - window;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  tbb::parallel_for(0, shape.kv_heads, [&](int h) {
    float* q = workspace.data() + PerHeadFloats(shape, window, tokens) * h;  // [rows][d], row j*W+i
    float* chunk = q + static_cast<size_t>(rows) * d;                      // [rows][kChunk]
    float* m = chunk + static_cast<size_t>(rows) * kChunk;
    float* l = m + rows;
    float* raw = l + rows;  // [prefix] (tokens floats reserved)
    for (int j = 0; j < g; ++j) {
      for (int i = 0; i < window; ++i) {
        const float* src = obs + (static_cast<int64_t>(i) * shape.q_heads + h * g + j) * d;
        std::copy(src, src + d, q + (static_cast<int64_t>(j) * window + i) * d);
      }
    }
    const Half* kh = keys + static_cast<int64_t>(h) * d;
    // Pass 1: per-row max and normalizer (online softmax over causal prefixes).
    for (int r = 0; r < rows; ++r) {
      m[r] = -INFINITY;
      l[r] = 0.0f;
    }
    for (int64_t t0 = 0; t0 < tokens; t0 += kChunk) {
      const int64_t n = std::min(kChunk, tokens - t0);
      internal::ScoreRows(q, rows, d, kh + t0 * token_stride, n, token_stride, sm_scale, chunk, kChunk);
      for (int r = 0; r < rows; ++r) {
        const int64_t visible = std::min(n, prefix + r % window + 1 - t0);  // causal
        if (visible <= 0) continue;
        float* s = chunk + static_cast<int64_t>(r) * kChunk;
        float chunk_max = -INFINITY;
        for (int64_t t = 0; t < visible; ++t) chunk_max = std::max(chunk_max, s[t]);
        const float new_m = std::max(m[r], chunk_max);
        // SoftmaxExp returns sum exp(s - chunk_max); rescale it and the old sum to new_m.
        const float sum = internal::SoftmaxExp(s, visible) * std::exp(chunk_max - new_m);
        l[r] = l[r] * std::exp(m[r] - new_m) + sum;
        m[r] = new_m;
      }
    }
    // Pass 2: probabilities of the prefix tokens, summed over the window and averaged over heads.
    std::fill(raw, raw + prefix, 0.0f);
    const float head_weight = 1.0f / static_cast<float>(g);
    for (int64_t t0 = 0; t0 < prefix; t0 += kChunk) {
      const int64_t n = std::min(kChunk, prefix - t0);
      internal::ScoreRows(q, rows, d, kh + t0 * token_stride, n, token_stride, sm_scale, chunk, kChunk);
      for (int r = 0; r < rows; ++r) {
        float* s = chunk + static_cast<int64_t>(r) * kChunk;
        const __m256 mb = _mm256_set1_ps(m[r]);
        const __m256 w = _mm256_set1_ps(head_weight / l[r]);
        int64_t t = 0;
        for (; t + 8 <= n; t += 8) {
          const __m256 p = internal::Exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), mb));
          _mm256_storeu_ps(raw + t0 + t, _mm256_fmadd_ps(p, w, _mm256_loadu_ps(raw + t0 + t)));
        }
        for (; t < n; ++t) raw[t0 + t] += std::exp(s[t] - m[r]) * (head_weight / l[r]);
      }
    }
    float* out = scores + h * prefix;
    const int64_t half = pool / 2;
    for (int64_t t = 0; t < prefix; ++t) {
      float best = raw[t];
      for (int64_t u = std::max<int64_t>(0, t - half); u <= std::min(prefix - 1, t + half); ++u) {
        best = std::max(best, raw[u]);
      }
      out[t] = best;
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
