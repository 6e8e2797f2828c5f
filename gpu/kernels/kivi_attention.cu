#include "gpu/kernels/kivi_attention.cuh"

#include <cmath>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/attention_kernels.cuh"

namespace kvt::gpu {
namespace {

using internal::Ld;
using kernels::KiviCacheView;
using kernels::KiviLayout;

// One block per (key group, KV head); one thread per token of the group.
// Dynamic smem: qs [g][d] (query times channel scale) and qz [g].
__global__ void QuantizedKeyLogitsKernel(KiviLayout l, const uint8_t* codes, const Half* scale,
                                         const Half* zero, const float* query, float sm_scale,
                                         int64_t row_len, float* logits) {
  extern __shared__ float smem[];
  const int g = l.shape.group(), d = l.shape.head_dim, kvh = l.shape.kv_heads, kg = l.key_group;
  const int64_t grp = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t i = grp * kvh + h;
  float* qs = smem;
  float* qz = smem + g * d;
  const float* q = query + static_cast<int64_t>(h) * g * d;
  for (int e = threadIdx.x; e < g * d; e += blockDim.x) qs[e] = q[e] * Ld(scale + i * d + e % d);
  __syncthreads();
  if (threadIdx.x < 32) {
    for (int j = 0; j < g; ++j) {
      float z = 0.0f;
      for (int c = threadIdx.x; c < d; c += 32) z = fmaf(q[j * d + c], Ld(zero + i * d + c), z);
      z = internal::WarpSum(z);
      if (threadIdx.x == 0) qz[j] = z;
    }
  }
  __syncthreads();
  const int t = threadIdx.x;
  if (t >= kg) return;
  const uint8_t* base = codes + i * l.KeyGroupCodeBytes();
  const int64_t channel_bytes = static_cast<int64_t>(kg) * l.bits / 8;
  float acc[internal::kMaxGroup];
#pragma unroll
  for (int j = 0; j < internal::kMaxGroup; ++j) acc[j] = 0.0f;
  for (int c = 0; c < d; ++c) {
    const float code = static_cast<float>(internal::Code(base + c * channel_bytes, t, l.bits));
#pragma unroll
    for (int j = 0; j < internal::kMaxGroup; ++j) {
      if (j < g) acc[j] = fmaf(qs[j * d + c], code, acc[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < internal::kMaxGroup; ++j) {
    if (j < g) logits[(static_cast<int64_t>(h) * g + j) * row_len + grp * kg + t] = (acc[j] + qz[j]) * sm_scale;
  }
}

struct KiviValue {
  KiviLayout l;
  KiviCacheView v;
  __device__ float operator()(int64_t t, int h, int c) const {
    const int kvh = l.shape.kv_heads;
    if (t < v.value_tokens) {
      const int64_t row = t * kvh + h;
      const int64_t p = row * l.ValueGroups() + c / l.value_group;
      return fmaf(static_cast<float>(internal::Code(v.value_codes + row * l.ValueTokenCodeBytes(), c, l.bits)),
                  Ld(v.value_scale + p), Ld(v.value_zero + p));
    }
    const int64_t slot = (v.value_ring_start + (t - v.value_tokens)) % v.value_ring_capacity;
    return Ld(v.value_residual + (slot * kvh + h) * l.shape.head_dim + c);
  }
};

}  // namespace

size_t KiviAttentionWorkspaceBytesCuda(const KiviLayout& layout, int64_t tokens) {
  return internal::AttentionWorkspaceBytes(layout.shape.q_heads, layout.shape.head_dim, tokens);
}

Status KiviDecodeAttentionCuda(const KiviLayout& l, const KiviCacheView& v, const float* query,
                               float* out, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(kernels::ValidateKiviCacheView(l, v));
  const int g = l.shape.group(), d = l.shape.head_dim, kvh = l.shape.kv_heads;
  if (g > internal::kMaxGroup) return Unsupported("kivi attention cuda: group above 16");
  if ((g * d + g) * sizeof(float) > 48 * 1024) return Unsupported("kivi attention cuda: group too large");
  if (l.key_group > 1024) return Unsupported("kivi attention cuda: key_group above 1024");
  if (!query || !out || !workspace) return InvalidArgument("kivi attention cuda: null buffer");
  const int64_t total = v.value_total();
  if (workspace_bytes < KiviAttentionWorkspaceBytesCuda(l, total)) {
    return InvalidArgument("kivi attention cuda: workspace too small");
  }
  const auto w = internal::CarveAttention(workspace, l.shape.q_heads, total);
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (v.key_groups > 0) {
    const int threads = ((l.key_group + 31) / 32) * 32;
    QuantizedKeyLogitsKernel<<<dim3(static_cast<unsigned>(v.key_groups), kvh), threads,
                               (g * d + g) * sizeof(float), stream>>>(
        l, v.key_codes, v.key_scale, v.key_zero, query, sm_scale, total, w.logits);
    KVT_RETURN_IF_ERROR(LaunchStatus("QuantizedKeyLogitsKernel"));
  }
  if (v.key_residual_tokens > 0) {
    internal::DenseSegs segs{};
    segs.n = 1;
    segs.s[0] = {v.key_residual, nullptr, v.key_residual_tokens, static_cast<int64_t>(kvh) * d, d};
    const dim3 grid(static_cast<unsigned>(internal::CeilDiv(v.key_residual_tokens, 8)), kvh);
    internal::LogitsKernel<<<grid, 256, g * d * sizeof(float), stream>>>(
        internal::SegKeyRow{segs}, v.key_residual_tokens, v.key_groups * l.key_group, total, query,
        g, d, sm_scale, w.logits);
    KVT_RETURN_IF_ERROR(LaunchStatus("LogitsKernel"));
  }
  internal::SoftmaxKernel<<<l.shape.q_heads, 1024, 0, stream>>>(w.logits, total, w.inv_sum);
  KVT_RETURN_IF_ERROR(LaunchStatus("SoftmaxKernel"));
  internal::ValuesKernel<<<dim3(w.splits, kvh), d < 1024 ? d : 1024, 0, stream>>>(
      KiviValue{l, v}, w.logits, total, g, d, l.shape.q_heads, w.partial);
  KVT_RETURN_IF_ERROR(LaunchStatus("ValuesKernel"));
  const int64_t n = static_cast<int64_t>(l.shape.q_heads) * d;
  internal::CombineKernel<<<static_cast<unsigned>(internal::CeilDiv(n, 256)), 256, 0, stream>>>(
      w.partial, w.splits, l.shape.q_heads, d, w.inv_sum, out);
  return LaunchStatus("CombineKernel");
}

}  // namespace kvt::gpu
