#include "gpu/kernels/decode_attention.cuh"

#include <cmath>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/attention_kernels.cuh"

namespace kvt::gpu {

size_t DecodeAttentionWorkspaceBytesCuda(const kernels::AttentionShape& shape, int64_t total_tokens) {
  return internal::AttentionWorkspaceBytes(shape.q_heads, shape.head_dim, total_tokens);
}

Status DecodeAttentionCuda(const kernels::AttentionShape& shape,
                           std::span<const kernels::KvSegment<kernels::Half>> segments,
                           const float* query, float* out, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (shape.group() > internal::kMaxGroup) return Unsupported("decode attention cuda: group above 16");
  if (segments.size() > static_cast<size_t>(internal::kMaxSegments)) {
    return Unsupported("decode attention cuda: more than 4 segments");
  }
  if (shape.group() * shape.head_dim * sizeof(float) > 48 * 1024) {
    return Unsupported("decode attention cuda: query group too large for shared memory");
  }
  if (!query || !out || !workspace) return InvalidArgument("decode attention cuda: null buffer");
  internal::DenseSegs segs{};
  int64_t total = 0;
  for (const auto& s : segments) {
    if (s.tokens < 0) return InvalidArgument("decode attention cuda: negative segment length");
    if (s.tokens == 0) continue;
    if (!s.keys || !s.values) return InvalidArgument("decode attention cuda: null segment");
    segs.s[segs.n++] = {s.keys, s.values, s.tokens, s.token_stride, s.head_stride};
    total += s.tokens;
  }
  if (total == 0) return InvalidArgument("decode attention cuda: no tokens");
  if (workspace_bytes < DecodeAttentionWorkspaceBytesCuda(shape, total)) {
    return InvalidArgument("decode attention cuda: workspace too small");
  }
  const int g = shape.group(), d = shape.head_dim;
  const auto w = internal::CarveAttention(workspace, shape.q_heads, total);
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  const dim3 lgrid(static_cast<unsigned>(internal::CeilDiv(total, 8)), shape.kv_heads);
  internal::LogitsKernel<<<lgrid, 256, g * d * sizeof(float), stream>>>(
      internal::SegKeyRow{segs}, total, 0, total, query, g, d, sm_scale, w.logits);
  KVT_RETURN_IF_ERROR(LaunchStatus("LogitsKernel"));
  internal::SoftmaxKernel<<<shape.q_heads, 1024, 0, stream>>>(w.logits, total, w.inv_sum);
  KVT_RETURN_IF_ERROR(LaunchStatus("SoftmaxKernel"));
  internal::ValuesKernel<<<dim3(w.splits, shape.kv_heads), d < 1024 ? d : 1024, 0, stream>>>(
      internal::SegValue{segs}, w.logits, total, g, d, shape.q_heads, w.partial);
  KVT_RETURN_IF_ERROR(LaunchStatus("ValuesKernel"));
  const int64_t n = static_cast<int64_t>(shape.q_heads) * d;
  internal::CombineKernel<<<static_cast<unsigned>(internal::CeilDiv(n, 256)), 256, 0, stream>>>(
      w.partial, w.splits, shape.q_heads, d, w.inv_sum, out);
  return LaunchStatus("CombineKernel");
}

}  // namespace kvt::gpu
