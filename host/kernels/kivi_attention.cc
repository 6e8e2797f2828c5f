#include "host/kernels/kivi_attention.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "host/kernels/internal/attention_inner.h"

namespace kvt::kernels {
namespace {

constexpr int64_t kValueBlock = 256;  // tokens whose value weights are prepared at once

struct HeadScratch {
  float* scores;  // [g][tokens]
  float* acc;     // [g][d]
  float* sums;    // [g]
  float* qs;      // [g][d]    query times key scale, one group at a time
  float* w;       // [kValueBlock][g][value groups]
  float* zsum;    // [g][value groups]
};

size_t HeadScratchFloats(const KiviLayout& l, int64_t tokens) {
  const size_t g = l.shape.group(), d = l.shape.head_dim, ng = l.ValueGroups();
  return g * tokens + g * d + g + g * d + kValueBlock * g * ng + g * ng;
}

HeadScratch Carve(const KiviLayout& l, int64_t tokens, float* base) {
  const size_t g = l.shape.group(), d = l.shape.head_dim, ng = l.ValueGroups();
  HeadScratch s;
  s.scores = base;
  s.acc = s.scores + g * tokens;
  s.sums = s.acc + g * d;
  s.qs = s.sums + g;
  s.w = s.qs + g * d;
  s.zsum = s.w + kValueBlock * g * ng;
  return s;
}

// kG query rows of ScoreKeyGroup at once (internal::ForRowTiles): qs [kG][d] (query times key
// scale), qz [kG].
template <int kBits, int kG>
void ScoreKeyGroupTile(int d, int kg, const uint8_t* codes, const float* qs, const float* qz,
                       float sm_scale, float* scores, int64_t stride) {
  const int64_t channel_bytes = static_cast<int64_t>(kg) * kBits / 8;
  for (int t = 0; t < kg; t += 16) {
    const bool two = t + 16 <= kg;
    __m256 acc[kG][2];
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int c = 0; c < d; ++c) {
      const uint8_t* stream = codes + c * channel_bytes;
      const __m256 k0 = _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(stream, t));
      const __m256 k1 = two ? _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(stream, t + 8))
                            : _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int j = 0; j < kG; ++j) {
        const __m256 w = _mm256_broadcast_ss(qs + j * d + c);
        acc[j][0] = _mm256_fmadd_ps(w, k0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(w, k1, acc[j][1]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      const __m256 z = _mm256_set1_ps(qz[j]);
      const __m256 sc = _mm256_set1_ps(sm_scale);
      float* out = scores + j * stride + t;
      _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_add_ps(acc[j][0], z), sc));
      if (two) _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_add_ps(acc[j][1], z), sc));
    }
  }
}

// Scores of one quantized key group (key_group tokens) for the g queries of one KV head.
template <int kBits>
void ScoreKeyGroup(const KiviLayout& l, const float* q, const uint8_t* codes, const Half* scale,
                   const Half* zero, float sm_scale, float* qs, float* scores, int64_t stride) {
  const int g = l.shape.group(), d = l.shape.head_dim, kg = l.key_group;
  float qz[256];
  for (int j = 0; j < g; ++j) {
    __m256 z = _mm256_setzero_ps();
    for (int c = 0; c < d; c += 8) {
      const __m256 qv = _mm256_loadu_ps(q + j * d + c);
      _mm256_storeu_ps(qs + j * d + c, _mm256_mul_ps(qv, internal::Load8(scale + c)));
      z = _mm256_fmadd_ps(qv, internal::Load8(zero + c), z);
    }
    qz[j] = internal::HorizontalSum(z);
  }
  internal::ForRowTiles(g, [&](auto rows, int j0) {
    ScoreKeyGroupTile<kBits, rows.value>(d, kg, codes, qs + j0 * d, qz + j0, sm_scale, scores + j0 * stride,
                                         stride);
  });
}

// kG query rows of AccumulateQuantizedValues' code sums over value tokens [t0, t1): acc [kG][d]
// += w[t - t0][j][c / vg] * code[t][c], token t's codes at codes + t * stride, w rows g * ng
// floats apart (internal::ForRowTiles).
template <int kBits, int kG>
void AccumulateValueCodesTile(const KiviLayout& l, const uint8_t* codes, int64_t stride, int64_t t0,
                              int64_t t1, const float* w, float* acc) {
  const int g = l.shape.group(), d = l.shape.head_dim, vg = l.value_group, ng = l.ValueGroups();
  for (int c = 0; c < d; c += 16) {
    const bool two = c + 16 <= d;
    const int k0 = c / vg, k1 = two ? (c + 8) / vg : k0;
    __m256 a[kG][2];
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      a[j][0] = _mm256_loadu_ps(acc + j * d + c);
      a[j][1] = two ? _mm256_loadu_ps(acc + j * d + c + 8) : _mm256_setzero_ps();
    }
    for (int64_t t = t0; t < t1; ++t) {
      const uint8_t* row = codes + t * stride;
      const __m256 c0 = _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(row, c));
      const __m256 c1 =
          two ? _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(row, c + 8)) : _mm256_setzero_ps();
      const float* wt = w + (t - t0) * g * ng;
#pragma GCC unroll 4
      for (int j = 0; j < kG; ++j) {
        a[j][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(wt + j * ng + k0), c0, a[j][0]);
        a[j][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(wt + j * ng + k1), c1, a[j][1]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      _mm256_storeu_ps(acc + j * d + c, a[j][0]);
      if (two) _mm256_storeu_ps(acc + j * d + c + 8, a[j][1]);
    }
  }
}

// acc[j][c] += sum_t p[j][t] * (code[t][c] * scale[t][c / vg] + zero[t][c / vg]) over quantized
// value tokens [0, n) of KV head h.
template <int kBits>
void AccumulateQuantizedValues(const KiviLayout& l, const KiviCacheView& v, int h, const float* p,
                               int64_t p_stride, int64_t n, const HeadScratch& s) {
  const int g = l.shape.group(), d = l.shape.head_dim, vg = l.value_group, ng = l.ValueGroups();
  const int64_t row_bytes = l.ValueTokenCodeBytes();
  const int kvh = l.shape.kv_heads;
  for (int i = 0; i < g * ng; ++i) s.zsum[i] = 0.0f;
  for (int64_t t0 = 0; t0 < n; t0 += kValueBlock) {
    const int64_t t1 = std::min(n, t0 + kValueBlock);
    for (int64_t t = t0; t < t1; ++t) {
      const Half* sc = v.value_scale + (t * kvh + h) * ng;
      const Half* zr = v.value_zero + (t * kvh + h) * ng;
      for (int j = 0; j < g; ++j) {
        const float pj = p[j * p_stride + t];
        for (int k = 0; k < ng; ++k) {
          s.w[((t - t0) * g + j) * ng + k] = pj * internal::ToFloat(sc[k]);
          s.zsum[j * ng + k] += pj * internal::ToFloat(zr[k]);
        }
      }
    }
    internal::ForRowTiles(g, [&](auto rows, int j0) {
      AccumulateValueCodesTile<kBits, rows.value>(l, v.value_codes + h * row_bytes, kvh * row_bytes, t0, t1,
                                                  s.w + j0 * ng, s.acc + j0 * d);
    });
  }
  for (int j = 0; j < g; ++j) {
    for (int c = 0; c < d; ++c) s.acc[j * d + c] += s.zsum[j * ng + c / vg];
  }
}

template <int kBits>
void AttendHead(const KiviLayout& l, const KiviCacheView& v, const float* query, float* out,
                float* scratch, int h) {
  const int g = l.shape.group(), d = l.shape.head_dim, kvh = l.shape.kv_heads;
  const int64_t total = v.value_total();
  const HeadScratch s = Carve(l, total, scratch);
  const float* q = query + static_cast<int64_t>(h) * g * d;
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t grp = 0; grp < v.key_groups; ++grp) {
    const int64_t i = grp * kvh + h;
    ScoreKeyGroup<kBits>(l, q, v.key_codes + i * l.KeyGroupCodeBytes(), v.key_scale + i * d,
                         v.key_zero + i * d, sm_scale, s.qs, s.scores + grp * l.key_group, total);
  }
  if (v.key_residual_tokens > 0) {
    internal::ScoreRows(q, g, d, v.key_residual + static_cast<int64_t>(h) * d, v.key_residual_tokens,
                        static_cast<int64_t>(kvh) * d, sm_scale,
                        s.scores + v.key_groups * l.key_group, total);
  }
  for (int j = 0; j < g; ++j) {
    s.sums[j] = internal::SoftmaxExp(s.scores + j * total, total);
    for (int c = 0; c < d; ++c) s.acc[j * d + c] = 0.0f;
  }
  AccumulateQuantizedValues<kBits>(l, v, h, s.scores, total, v.value_tokens, s);
  // Residual values: the ring in at most two contiguous pieces.
  const int64_t row = static_cast<int64_t>(kvh) * d;
  int64_t done = 0;
  while (done < v.value_residual_tokens) {
    const int64_t start = (v.value_ring_start + done) % v.value_ring_capacity;
    const int64_t n = std::min(v.value_residual_tokens - done, v.value_ring_capacity - start);
    internal::AccumulateRows(s.scores + v.value_tokens + done, total, g, d,
                             v.value_residual + start * row + static_cast<int64_t>(h) * d, n, row,
                             s.acc);
    done += n;
  }
  for (int j = 0; j < g; ++j) {
    const float inv = 1.0f / s.sums[j];
    float* o = out + (static_cast<int64_t>(h) * g + j) * d;
    for (int c = 0; c < d; ++c) o[c] = s.acc[j * d + c] * inv;
  }
}

}  // namespace

Status ValidateKiviCacheView(const KiviLayout& layout, const KiviCacheView& v) {
  KVT_RETURN_IF_ERROR(layout.Validate());
  if (layout.shape.group() > 256) return InvalidArgument("kivi attention: query group above 256");
  if (v.key_groups < 0 || v.key_residual_tokens < 0 || v.value_tokens < 0 ||
      v.value_residual_tokens < 0) {
    return InvalidArgument("kivi attention: negative token count");
  }
  if (v.key_tokens(layout) != v.value_total()) {
    return InvalidArgument("kivi attention: keys cover " + std::to_string(v.key_tokens(layout)) +
                           " tokens but values " + std::to_string(v.value_total()));
  }
  if (v.value_total() == 0) return InvalidArgument("kivi attention: no tokens");
  if (v.key_groups > 0 && (!v.key_codes || !v.key_scale || !v.key_zero)) {
    return InvalidArgument("kivi attention: null quantized keys");
  }
  if (v.key_residual_tokens > 0 && !v.key_residual) return InvalidArgument("kivi attention: null key residual");
  if (v.value_tokens > 0 && (!v.value_codes || !v.value_scale || !v.value_zero)) {
    return InvalidArgument("kivi attention: null quantized values");
  }
  if (v.value_residual_tokens > 0 &&
      (!v.value_residual || v.value_ring_capacity < v.value_residual_tokens ||
       v.value_ring_start < 0 || v.value_ring_start >= v.value_ring_capacity)) {
    return InvalidArgument("kivi attention: bad value residual ring");
  }
  return Status::Ok();
}

size_t KiviAttentionWorkspaceFloats(const KiviLayout& layout, int64_t tokens) {
  return static_cast<size_t>(layout.shape.kv_heads) * HeadScratchFloats(layout, tokens);
}

Status KiviDecodeAttention(const KiviLayout& layout, const KiviCacheView& cache, const float* query,
                           float* out, std::span<float> workspace) {
  KVT_RETURN_IF_ERROR(ValidateKiviCacheView(layout, cache));
  if (!query || !out) return InvalidArgument("kivi attention: null query or output");
  const int64_t total = cache.value_total();
  if (workspace.size() < KiviAttentionWorkspaceFloats(layout, total)) {
    return InvalidArgument("kivi attention: workspace too small");
  }
  const size_t per_head = HeadScratchFloats(layout, total);
  tbb::parallel_for(0, layout.shape.kv_heads, [&](int h) {
    float* scratch = workspace.data() + per_head * h;
    switch (layout.bits) {
      case 1: AttendHead<1>(layout, cache, query, out, scratch, h); break;
      case 2: AttendHead<2>(layout, cache, query, out, scratch, h); break;
      case 4: AttendHead<4>(layout, cache, query, out, scratch, h); break;
      default: AttendHead<8>(layout, cache, query, out, scratch, h); break;
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels
