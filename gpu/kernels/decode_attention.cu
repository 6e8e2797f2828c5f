#include "gpu/kernels/decode_attention.cuh"

#include <cmath>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/attention_kernels.cuh"
#include "gpu/kernels/internal/split_attention.cuh"

namespace kvt::gpu {
namespace {

// fp16 K/V over up to four segments, for the split-K kernel (no quantized keys).
struct SegKv {
  internal::DenseSegs segs;
  int64_t quantized_keys = 0;

  __device__ const Half* KeyRow(int64_t t, int h) const {
    const int i = internal::Locate(segs, t);
    return segs.s[i].k + t * segs.s[i].token_stride + h * segs.s[i].head_stride;
  }
  __device__ const Half* ValueRow(int64_t t, int h) const {
    const int i = internal::Locate(segs, t);
    return segs.s[i].v + t * segs.s[i].token_stride + h * segs.s[i].head_stride;
  }
  template <int G>
  __device__ void QuantizedLogits(int64_t, int, const float*, float*) const {}  // there are none
  __device__ float K(int64_t t, int h, int c) const { return internal::Ld(KeyRow(t, h) + c); }
  __device__ float V(int64_t t, int h, int c) const { return internal::Ld(ValueRow(t, h) + c); }
  __device__ void K8(int64_t t, int h, int c0, float k[8]) const { internal::Load8(KeyRow(t, h) + c0, k); }
  __device__ void V8(int64_t t, int h, int c0, float v[8]) const { internal::Load8(ValueRow(t, h) + c0, v); }
};

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

size_t DecodeAttentionWorkspaceBytesCuda(const kernels::AttentionShape& shape, int64_t total_tokens) {
  return internal::SplitWorkspaceBytes(shape.q_heads, shape.kv_heads, shape.head_dim, total_tokens);
}

Status DecodeAttentionCuda(const kernels::AttentionShape& shape,
                           std::span<const kernels::KvSegment<kernels::Half>> segments,
                           const float* query, float* out, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  const int g = shape.group(), d = shape.head_dim;
  if (g > internal::kSplitMaxGroup) return Unsupported("decode attention cuda: group above 16");
  if (segments.size() > static_cast<size_t>(internal::kMaxSegments)) {
    return Unsupported("decode attention cuda: more than 4 segments");
  }
  if (!query || !out || !workspace) return InvalidArgument("decode attention cuda: null buffer");
  SegKv kv{};
  bool vec = internal::SplitVecShape(d);
  int64_t total = 0;
  for (const auto& s : segments) {
    if (s.tokens < 0) return InvalidArgument("decode attention cuda: negative segment length");
    if (s.tokens == 0) continue;
    if (!s.keys || !s.values) return InvalidArgument("decode attention cuda: null segment");
    kv.segs.s[kv.segs.n++] = {s.keys, s.values, s.tokens, s.token_stride, s.head_stride};
    vec = vec && Aligned16(s.keys) && Aligned16(s.values) && s.token_stride % 8 == 0 && s.head_stride % 8 == 0;
    total += s.tokens;
  }
  if (total == 0) return InvalidArgument("decode attention cuda: no tokens");
  if (workspace_bytes < DecodeAttentionWorkspaceBytesCuda(shape, total)) {
    return InvalidArgument("decode attention cuda: workspace too small");
  }
  const auto w = internal::CarveSplit(workspace, shape.q_heads, shape.kv_heads, d, total);
  if (internal::SplitSmemBytes(g, d) > internal::kSplitMaxSmem) {
    return Unsupported("decode attention cuda: query group x head_dim too large for shared memory");
  }
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  const Status launched = vec ? internal::LaunchSplitAttention<SegKv, true>(kv, total, query, g, d, shape.q_heads,
                                                                           shape.kv_heads, sm_scale, w, stream)
                             : internal::LaunchSplitAttention<SegKv, false>(kv, total, query, g, d, shape.q_heads,
                                                                            shape.kv_heads, sm_scale, w, stream);
  KVT_RETURN_IF_ERROR(launched);
  return internal::LaunchSplitCombine(w, shape.q_heads, d, out, stream);
}

}  // namespace kvt::gpu
