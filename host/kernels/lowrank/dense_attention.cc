#include "host/kernels/lowrank/dense_attention.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/kernels/lowrank/internal/fast_math.h"
#include "host/kernels/lowrank/internal/half_bits.h"

namespace kvt::kernels::lowrank {
namespace {

size_t HeadFloats(const DenseAttentionShape& s) {
  const size_t group = static_cast<size_t>(s.num_q_heads / std::max(1, s.num_kv_heads));
  return static_cast<size_t>(s.capacity) * group + group * s.head_dim + 2 * s.head_dim + 16;
}

Status Validate(const DenseAttentionShape& s, const void* k, const void* v, const float* q, float* o) {
  if (s.num_kv_heads < 1 || s.num_q_heads < s.num_kv_heads || s.num_q_heads % s.num_kv_heads != 0 ||
      s.num_q_heads / s.num_kv_heads > 64) {
    return InvalidArgument("DenseAttention: q_heads must be a multiple (<= 64x) of kv_heads");
  }
  if (s.head_dim < 1 || s.capacity < 0) return InvalidArgument("DenseAttention: bad head_dim or capacity");
  if (q == nullptr || o == nullptr || (s.capacity > 0 && (k == nullptr || v == nullptr))) {
    return InvalidArgument("DenseAttention: null pointer");
  }
  return Status::Ok();
}

template <typename T>
[[gnu::always_inline]] inline void LoadRow(const T* src, float* dst, int d) {
  if constexpr (sizeof(T) == 4) {
    std::memcpy(dst, src, static_cast<size_t>(d) * 4);
  } else {
    for (int i = 0; i < d; ++i) {
#if KVT_LOWRANK_HAVE_FLOAT16
      _Float16 h;
      std::memcpy(&h, src + i, 2);
      dst[i] = static_cast<float>(h);
#else
      uint16_t bits;
      std::memcpy(&bits, src + i, 2);
      dst[i] = internal::HalfBitsToFloat(bits);
#endif
    }
  }
}

template <typename T>
[[gnu::always_inline]] inline void RunHead(const DenseAttentionShape& s, const T* keys, const T* values,
                                           int64_t n, int h, const float* query, float* out, float* ws) {
  const int d = s.head_dim;
  const int group = s.num_q_heads / s.num_kv_heads;
  const float scale = s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(d));
  float* scores = ws;                               // [n][group]
  float* acc = scores + s.capacity * group;         // [group][d]
  float* row = acc + static_cast<size_t>(group) * d;  // [d]
  const float* q0 = query + static_cast<size_t>(h) * group * d;
  const T* kh = keys + static_cast<size_t>(h) * s.capacity * d;
  const T* vh = values + static_cast<size_t>(h) * s.capacity * d;
  float maxs[64], sums[64];
  for (int g = 0; g < group; ++g) {
    maxs[g] = -INFINITY;
    sums[g] = 0.0f;
  }
  for (int64_t t = 0; t < n; ++t) {
    LoadRow(kh + t * d, row, d);
    for (int g = 0; g < group; ++g) {
      const float* qg = q0 + static_cast<size_t>(g) * d;
      float dot = 0.0f;
      for (int i = 0; i < d; ++i) dot += qg[i] * row[i];
      scores[t * group + g] = dot * scale;
      maxs[g] = std::max(maxs[g], dot * scale);
    }
  }
  for (int i = 0; i < group * d; ++i) acc[i] = 0.0f;
  for (int64_t t = 0; t < n; ++t) {
    LoadRow(vh + t * d, row, d);
    for (int g = 0; g < group; ++g) {
      const float p = internal::FastExp(scores[t * group + g] - maxs[g]);
      sums[g] += p;
      float* ag = acc + static_cast<size_t>(g) * d;
      for (int i = 0; i < d; ++i) ag[i] += p * row[i];
    }
  }
  for (int g = 0; g < group; ++g) {
    float* o = out + (static_cast<size_t>(h) * group + g) * d;
    const float inv = sums[g] > 0.0f ? 1.0f / sums[g] : 0.0f;
    for (int i = 0; i < d; ++i) o[i] = acc[static_cast<size_t>(g) * d + i] * inv;
  }
}

#if KVT_LOWRANK_HAVE_AVX2_PATH
template <typename T>
KVT_LOWRANK_AVX2 void RunHeadAvx2(const DenseAttentionShape& s, const T* k, const T* v, int64_t n, int h,
                                  const float* q, float* o, float* ws) {
  RunHead(s, k, v, n, h, q, o, ws);
}
#endif
template <typename T>
void RunHeadGeneric(const DenseAttentionShape& s, const T* k, const T* v, int64_t n, int h,
                    const float* q, float* o, float* ws) {
  RunHead(s, k, v, n, h, q, o, ws);
}

template <typename T, typename Count>
void RunAll(const DenseAttentionShape& s, const T* k, const T* v, Count count, const float* q, float* o,
            float* ws) {
  const size_t per_head = HeadFloats(s);
#if KVT_LOWRANK_HAVE_AVX2_PATH
  const bool avx2 = internal::HasAvx2Fma();
#endif
  tbb::parallel_for(tbb::blocked_range<int>(0, s.num_kv_heads), [&](const tbb::blocked_range<int>& r) {
    for (int h = r.begin(); h < r.end(); ++h) {
      float* hw = ws + static_cast<size_t>(h) * per_head;
#if KVT_LOWRANK_HAVE_AVX2_PATH
      if (avx2) {
        RunHeadAvx2(s, k, v, count(h), h, q, o, hw);
        continue;
      }
#endif
      RunHeadGeneric(s, k, v, count(h), h, q, o, hw);
    }
  });
}

}  // namespace

size_t DenseAttentionWorkspaceBytes(const DenseAttentionShape& shape) {
  return static_cast<size_t>(std::max(0, shape.num_kv_heads)) * HeadFloats(shape) * sizeof(float);
}

namespace {

template <typename T>
Status RaggedAttention(const DenseAttentionShape& shape, const T* keys, const T* values,
                       const int64_t* tokens, const float* query, float* out, void* workspace,
                       size_t workspace_bytes) {
  KVT_RETURN_IF_ERROR(Validate(shape, keys, values, query, out));
  if (tokens == nullptr) return InvalidArgument("DenseAttention: null tokens");
  for (int h = 0; h < shape.num_kv_heads; ++h) {
    if (tokens[h] < 0 || tokens[h] > shape.capacity) {
      return InvalidArgument("DenseAttention: head length outside [0, capacity]");
    }
  }
  if (workspace == nullptr || workspace_bytes < DenseAttentionWorkspaceBytes(shape)) {
    return InvalidArgument("DenseAttention: workspace too small");
  }
  RunAll(shape, keys, values, [tokens](int h) { return tokens[h]; }, query, out,
         static_cast<float*>(workspace));
  return Status::Ok();
}

}  // namespace

Status DenseAttention(const DenseAttentionShape& shape, const float* keys, const float* values,
                      const int64_t* tokens, const float* query, float* out, void* workspace,
                      size_t workspace_bytes) {
  return RaggedAttention(shape, keys, values, tokens, query, out, workspace, workspace_bytes);
}

Status DenseAttentionF16(const DenseAttentionShape& shape, const uint16_t* keys,
                         const uint16_t* values, const int64_t* tokens, const float* query,
                         float* out, void* workspace, size_t workspace_bytes) {
  return RaggedAttention(shape, keys, values, tokens, query, out, workspace, workspace_bytes);
}

Status DenseAttentionF16(const DenseAttentionShape& shape, const uint16_t* keys,
                         const uint16_t* values, int64_t tokens, const float* query, float* out,
                         void* workspace, size_t workspace_bytes) {
  KVT_RETURN_IF_ERROR(Validate(shape, keys, values, query, out));
  if (tokens < 0 || tokens > shape.capacity) {
    return InvalidArgument("DenseAttentionF16: tokens outside [0, capacity]");
  }
  if (workspace == nullptr || workspace_bytes < DenseAttentionWorkspaceBytes(shape)) {
    return InvalidArgument("DenseAttentionF16: workspace too small");
  }
  RunAll(shape, keys, values, [tokens](int) { return tokens; }, query, out,
         static_cast<float*>(workspace));
  return Status::Ok();
}

}  // namespace kvt::kernels::lowrank
