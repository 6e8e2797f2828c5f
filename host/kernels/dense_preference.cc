#include "host/kernels/dense_preference.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "host/kernels/internal/attention_inner.h"

namespace kvt::kernels {
namespace {

constexpr int kRowBlock = 8;  // query rows scored together (keys read once per block)

size_t PerHeadFloats(const AttentionShape& s, int64_t tokens) {
  return static_cast<size_t>(kRowBlock) * (s.head_dim + tokens) + 1;
}

}  // namespace

size_t DensePreferenceWorkspaceFloats(const AttentionShape& shape, int window, int64_t tokens) {
  return static_cast<size_t>(shape.kv_heads) * PerHeadFloats(shape, tokens);
}

StatusOr<float> DensePreferenceScore(const AttentionShape& shape, const float* obs, int window,
                                     const Half* keys, int64_t tokens, int64_t token_stride,
                                     float top_frac, std::span<float> workspace) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (window <= 0 || tokens < window) return InvalidArgument("dense preference: need 0 < window <= tokens");
  if (!(top_frac > 0.0f && top_frac <= 1.0f)) return InvalidArgument("dense preference: top_frac in (0, 1]");
  if (!obs || !keys) return InvalidArgument("dense preference: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("dense preference: token_stride smaller than a row");
  if (workspace.size() < DensePreferenceWorkspaceFloats(shape, window, tokens)) {
    return InvalidArgument("dense preference: workspace too small");
  }
  const int g = shape.group(), d = shape.head_dim;
  const int rows = g * window;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  tbb::parallel_for(0, shape.kv_heads, [&](int h) {
    float* base = workspace.data() + PerHeadFloats(shape, tokens) * h;
    float* q = base;                                  // [kRowBlock][d]
    float* s = q + static_cast<size_t>(kRowBlock) * d;  // [kRowBlock][tokens]
    float* total = s + static_cast<size_t>(kRowBlock) * tokens;
    double acc = 0.0;
    for (int r0 = 0; r0 < rows; r0 += kRowBlock) {
      const int n = std::min(kRowBlock, rows - r0);
      int64_t longest = 0;
      for (int r = 0; r < n; ++r) {
        const int j = (r0 + r) / window, i = (r0 + r) % window;
        const float* src = obs + (static_cast<int64_t>(i) * shape.q_heads + h * g + j) * d;
        std::copy(src, src + d, q + static_cast<int64_t>(r) * d);
        longest = std::max(longest, tokens - window + i + 1);
      }
      internal::ScoreRows(q, n, d, keys + static_cast<int64_t>(h) * d, longest, token_stride,
                          sm_scale, s, tokens);
      for (int r = 0; r < n; ++r) {
        const int i = (r0 + r) % window;
        const int64_t len = tokens - window + i + 1;
        float* p = s + static_cast<int64_t>(r) * tokens;
        const float sum = internal::SoftmaxExp(p, len);
        const int64_t top = DensePreferenceTopCount(len, top_frac);
        std::nth_element(p, p + (top - 1), p + len, std::greater<float>());
        double top_sum = 0.0;
        for (int64_t t = 0; t < top; ++t) top_sum += p[t];
        acc += 1.0 - top_sum / sum;
      }
    }
    *total = static_cast<float>(acc);
  });
  double sum = 0.0;
  for (int h = 0; h < shape.kv_heads; ++h) {
    sum += workspace[PerHeadFloats(shape, tokens) * h + PerHeadFloats(shape, tokens) - 1];
  }
  return static_cast<float>(sum / (static_cast<double>(shape.q_heads) * window));
}

}  // namespace kvt::kernels
