#include "host/kernels/decode_attention.h"

#include <tbb/parallel_for.h>

#include <cmath>

#include "host/kernels/internal/attention_inner.h"

namespace kvt::kernels {
namespace {

template <typename T>
Status Run(const AttentionShape& shape, std::span<const KvSegment<T>> segments, const float* query,
           float* out, std::span<float> workspace) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (!query || !out) return InvalidArgument("decode attention: null query or output");
  int64_t total = 0;
  for (const auto& s : segments) {
    if (s.tokens < 0) return InvalidArgument("decode attention: negative segment length");
    if (s.tokens > 0 && (!s.keys || !s.values)) return InvalidArgument("decode attention: null segment");
    total += s.tokens;
  }
  if (total == 0) return InvalidArgument("decode attention: no tokens");
  if (workspace.size() < DecodeAttentionWorkspaceFloats(shape, total)) {
    return InvalidArgument("decode attention: workspace too small");
  }
  const int g = shape.group(), d = shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  tbb::parallel_for(0, shape.kv_heads, [&](int h) {
    float* scores = workspace.data() + static_cast<size_t>(h) * g * (total + d + 1);
    float* acc = scores + static_cast<size_t>(g) * total;
    const float* q = query + static_cast<size_t>(h) * g * d;
    int64_t off = 0;
    for (const auto& s : segments) {
      if (s.tokens == 0) continue;
      internal::ScoreRows(q, g, d, s.keys + h * s.head_stride, s.tokens, s.token_stride, scale,
                          scores + off, total);
      off += s.tokens;
    }
    float* sums = acc + static_cast<size_t>(g) * d;
    for (int j = 0; j < g; ++j) {
      sums[j] = internal::SoftmaxExp(scores + static_cast<size_t>(j) * total, total);
      for (int c = 0; c < d; ++c) acc[j * d + c] = 0.0f;
    }
    off = 0;
    for (const auto& s : segments) {
      if (s.tokens == 0) continue;
      internal::AccumulateRows(scores + off, total, g, d, s.values + h * s.head_stride, s.tokens,
                               s.token_stride, acc);
      off += s.tokens;
    }
    for (int j = 0; j < g; ++j) {
      const float inv = 1.0f / sums[j];
      float* o = out + (static_cast<size_t>(h) * g + j) * d;
      for (int c = 0; c < d; ++c) o[c] = acc[j * d + c] * inv;
    }
  });
  return Status::Ok();
}

}  // namespace

size_t DecodeAttentionWorkspaceFloats(const AttentionShape& shape, int64_t total_tokens) {
  return static_cast<size_t>(shape.q_heads) * static_cast<size_t>(total_tokens + shape.head_dim + 1);
}

Status DecodeAttention(const AttentionShape& shape, std::span<const KvSegment<Half>> segments,
                       const float* query, float* out, std::span<float> workspace) {
  return Run(shape, segments, query, out, workspace);
}

Status DecodeAttention(const AttentionShape& shape, std::span<const KvSegment<float>> segments,
                       const float* query, float* out, std::span<float> workspace) {
  return Run(shape, segments, query, out, workspace);
}

}  // namespace kvt::kernels
