#include "gpu/kernels/kivi_attention.cuh"

#include <cmath>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/split_attention.cuh"

namespace kvt::gpu {
namespace {

using internal::Ld;
using kernels::KiviCacheView;
using kernels::KiviLayout;

// A KIVI cache for the split-K kernel: quantized keys take the thread-per-token path and are
// dequantized in registers (code * scale + zero); values are unpacked in registers; the residual
// windows are plain fp16 rows. Nothing dequantized is ever written to memory.
template <int kBits>
struct KiviKv {
  KiviLayout l;
  KiviCacheView v;
  int64_t quantized_keys;  // key_groups * key_group

  // K and K8 serve the residual keys (t >= quantized_keys); quantized ones go through QuantizedLogits.
  __device__ float K(int64_t t, int h, int c) const { return Ld(KeyResidualRow(t, h) + c); }
  // acc[j] += q_j . K(t) for quantized token t, the query transposed in qt_s [d][G]: the token's
  // group, code offset and parameter rows are worked out once, then each channel is a byte load,
  // the dequantizing FMA and G FMAs fed by one (G = 4) shared-memory vector load per 4 heads.
  template <int G>
  __device__ void QuantizedLogits(int64_t t, int h, const float* qt_s, float* acc) const {
    const int d = l.shape.head_dim;
    const int64_t grp = t / l.key_group;
    const int pos = static_cast<int>(t - grp * l.key_group);
    const int64_t i = grp * l.shape.kv_heads + h;
    const int channel_bytes = l.key_group * kBits / 8;
    const uint8_t* code = v.key_codes + i * l.KeyGroupCodeBytes() + (pos * kBits) / 8;
    const int shift = (pos * kBits) % 8;
    const Half* scale = v.key_scale + i * d;
    const Half* zero = v.key_zero + i * d;
#pragma unroll 4
    for (int c = 0; c < d; ++c) {
      const int q = (code[c * channel_bytes] >> shift) & ((1 << kBits) - 1);
      const float k = fmaf(static_cast<float>(q), Ld(scale + c), Ld(zero + c));
      const float4* qc = reinterpret_cast<const float4*>(qt_s + c * G);
#pragma unroll
      for (int j4 = 0; j4 < G / 4; ++j4) {
        const float4 qv = qc[j4];
        acc[4 * j4] = fmaf(qv.x, k, acc[4 * j4]);
        acc[4 * j4 + 1] = fmaf(qv.y, k, acc[4 * j4 + 1]);
        acc[4 * j4 + 2] = fmaf(qv.z, k, acc[4 * j4 + 2]);
        acc[4 * j4 + 3] = fmaf(qv.w, k, acc[4 * j4 + 3]);
      }
    }
  }
  __device__ void K8(int64_t t, int h, int c0, float k[8]) const { internal::Load8(KeyResidualRow(t, h) + c0, k); }
  __device__ const Half* KeyResidualRow(int64_t t, int h) const {
    return v.key_residual + ((t - quantized_keys) * l.shape.kv_heads + h) * l.shape.head_dim;
  }

  __device__ float V(int64_t t, int h, int c) const {
    if (t < v.value_tokens) {
      const int64_t row = t * l.shape.kv_heads + h;
      const int64_t p = row * l.ValueGroups() + c / l.value_group;
      return fmaf(static_cast<float>(internal::Code(v.value_codes + row * l.ValueTokenCodeBytes(), c, kBits)),
                  Ld(v.value_scale + p), Ld(v.value_zero + p));
    }
    return Ld(ValueRingRow(t, h) + c);
  }
  // Channels c0..c0+7 of a quantized row are kBits contiguous bytes, aligned to kBits.
  __device__ void V8(int64_t t, int h, int c0, float out[8]) const {
    if (t >= v.value_tokens) {
      internal::Load8(ValueRingRow(t, h) + c0, out);
      return;
    }
    const int64_t row = t * l.shape.kv_heads + h;
    const uint8_t* p = v.value_codes + row * l.ValueTokenCodeBytes() + c0 * kBits / 8;
    uint64_t word;
    if constexpr (kBits == 1) word = *p;
    if constexpr (kBits == 2) word = *reinterpret_cast<const uint16_t*>(p);
    if constexpr (kBits == 4) word = *reinterpret_cast<const uint32_t*>(p);
    if constexpr (kBits == 8) word = *reinterpret_cast<const uint64_t*>(p);
    const int64_t gi = row * l.ValueGroups() + c0 / l.value_group;
    const float scale = Ld(v.value_scale + gi), zero = Ld(v.value_zero + gi);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      out[e] = fmaf(static_cast<float>((word >> (e * kBits)) & ((1u << kBits) - 1)), scale, zero);
    }
  }
  __device__ const Half* ValueRingRow(int64_t t, int h) const {
    const int64_t slot = (v.value_ring_start + (t - v.value_tokens)) % v.value_ring_capacity;
    return v.value_residual + (slot * l.shape.kv_heads + h) * l.shape.head_dim;
  }
};

bool AlignedTo(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

template <int kBits>
Status LaunchKivi(const KiviLayout& l, const KiviCacheView& v, const float* query,
                  const internal::SplitWorkspace& w, cudaStream_t stream) {
  const KiviKv<kBits> kv{l, v, v.key_groups * l.key_group};
  const int g = l.shape.group(), d = l.shape.head_dim;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t total = v.value_total();
  const bool vec = internal::SplitVecShape(d) && AlignedTo(v.key_residual, 16) &&
                   AlignedTo(v.value_residual, 16) && AlignedTo(v.value_codes, 8);
  return vec ? internal::LaunchSplitAttention<KiviKv<kBits>, true>(kv, total, query, g, d, l.shape.q_heads,
                                                                   l.shape.kv_heads, sm_scale, w, stream)
             : internal::LaunchSplitAttention<KiviKv<kBits>, false>(kv, total, query, g, d, l.shape.q_heads,
                                                                    l.shape.kv_heads, sm_scale, w, stream);
}

}  // namespace

size_t KiviAttentionWorkspaceBytesCuda(const KiviLayout& layout, int64_t tokens) {
  return internal::SplitWorkspaceBytes(layout.shape.q_heads, layout.shape.kv_heads, layout.shape.head_dim, tokens);
}

Status KiviDecodeAttentionCuda(const KiviLayout& l, const KiviCacheView& v, const float* query,
                               float* out, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(kernels::ValidateKiviCacheView(l, v));
  const int g = l.shape.group(), d = l.shape.head_dim;
  if (g > internal::kSplitMaxGroup) return Unsupported("kivi attention cuda: group above 16");
  if (!query || !out || !workspace) return InvalidArgument("kivi attention cuda: null buffer");
  const int64_t total = v.value_total();
  if (workspace_bytes < KiviAttentionWorkspaceBytesCuda(l, total)) {
    return InvalidArgument("kivi attention cuda: workspace too small");
  }
  const auto w = internal::CarveSplit(workspace, l.shape.q_heads, l.shape.kv_heads, d, total);
  if (internal::SplitSmemBytes(g, d) > internal::kSplitMaxSmem) {
    return Unsupported("kivi attention cuda: query group x head_dim too large for shared memory");
  }
  const Status launched = l.bits == 1   ? LaunchKivi<1>(l, v, query, w, stream)
                          : l.bits == 2 ? LaunchKivi<2>(l, v, query, w, stream)
                          : l.bits == 4 ? LaunchKivi<4>(l, v, query, w, stream)
                                        : LaunchKivi<8>(l, v, query, w, stream);
  KVT_RETURN_IF_ERROR(launched);
  return internal::LaunchSplitCombine(w, l.shape.q_heads, d, out, stream);
}

}  // namespace kvt::gpu
