// Inner loops shared by decode_attention.cc and kivi_attention.cc: scores of a query group
// against full-precision key rows, softmax, and the probability-weighted sum of value rows.
// AVX2 code: include only from files compiled with the host/kernels flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "host/kernels/internal/simd.h"

namespace kvt::kernels::internal {

// Rows are often token_stride >> d apart (one head of a token-major cache: 256 of every 2048
// bytes), a stride the hardware prefetchers do not follow across pages; so the tiles below
// prefetch the row this many tokens ahead (ScoreRows) or, on their first channel slice, the whole
// row (AccumulateRows). Measured (one thread, 8 heads x 128, 32K tokens from DRAM): 35 ms without,
// 25 ms with.
inline constexpr int64_t kScorePrefetchRows = 16;
inline constexpr int64_t kAccumulatePrefetchRows = 32;

// Calls fn(std::integral_constant<int, n>{}, j0) for the tiles [j0, j0 + n) of g rows: n = 4 but
// for a last tile of 1-3 rows. The tile functions take their row count as a template parameter
// and unroll over it, so that their accumulators are registers: with a run-time count GCC kept
// them in a stack array and every fma went through a store and a reload.
template <typename Fn>
inline void ForRowTiles(int g, Fn&& fn) {
  for (int j0 = 0; j0 < g; j0 += 4) {
    switch (std::min(4, g - j0)) {
      case 1: fn(std::integral_constant<int, 1>{}, j0); break;
      case 2: fn(std::integral_constant<int, 2>{}, j0); break;
      case 3: fn(std::integral_constant<int, 3>{}, j0); break;
      default: fn(std::integral_constant<int, 4>{}, j0); break;
    }
  }
}

// kG query rows of ScoreRows at once (ForRowTiles).
template <int kG, typename T>
inline void ScoreRowsTile(const float* q, int d, const T* keys, int64_t tokens, int64_t token_stride,
                          float scale, float* scores, int64_t score_stride) {
  for (int64_t t = 0; t < tokens; ++t) {
    const T* k = keys + t * token_stride;
    if (t + kScorePrefetchRows < tokens) {
      PrefetchLines(k + kScorePrefetchRows * token_stride, d * sizeof(T));
    }
    __m256 acc[kG][2];
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= d; c += 16) {
      const __m256 k0 = Load8(k + c), k1 = Load8(k + c + 8);
#pragma GCC unroll 4
      for (int j = 0; j < kG; ++j) {
        const float* qj = q + j * d + c;
        acc[j][0] = _mm256_fmadd_ps(_mm256_loadu_ps(qj), k0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(_mm256_loadu_ps(qj + 8), k1, acc[j][1]);
      }
    }
    if (c < d) {
      const __m256 k0 = Load8(k + c);
#pragma GCC unroll 4
      for (int j = 0; j < kG; ++j) acc[j][0] = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * d + c), k0, acc[j][0]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      scores[j * score_stride + t] = scale * HorizontalSum(_mm256_add_ps(acc[j][0], acc[j][1]));
    }
  }
}

// scores[j * score_stride + t] = scale * q[j] . keys[t]  for j < g, t < tokens.
//   q [g][d] float, keys rows `token_stride` elements apart; d a multiple of 8.
template <typename T>
inline void ScoreRows(const float* q, int g, int d, const T* keys, int64_t tokens,
                      int64_t token_stride, float scale, float* scores, int64_t score_stride) {
  ForRowTiles(g, [&](auto rows, int j0) {
    ScoreRowsTile<rows.value>(q + static_cast<int64_t>(j0) * d, d, keys, tokens, token_stride, scale,
                              scores + j0 * score_stride, score_stride);
  });
}

// In place: s[i] = exp(s[i] - max(s)); returns the sum.
inline float SoftmaxExp(float* s, int64_t n) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + i));
  float m = HorizontalMax(mv);
  for (; i < n; ++i) m = std::max(m, s[i]);
  const __m256 mb = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mb));
    _mm256_storeu_ps(s + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = HorizontalSum(sum);
  if (i < n) {
    alignas(32) float tail[8];
    for (int k = 0; k < 8; ++k) tail[k] = i + k < n ? s[i + k] - m : -INFINITY;
    const __m256 e = Exp8(_mm256_load_ps(tail));
    _mm256_store_ps(tail, e);
    for (int k = 0; i + k < n; ++k) {
      s[i + k] = tail[k];
      total += tail[k];
    }
  }
  return total;
}

// kG rows of AccumulateRows at once (ForRowTiles).
template <int kG, typename T>
inline void AccumulateRowsTile(const float* p, int64_t p_stride, int d, const T* values, int64_t t0,
                               int64_t t1, int64_t token_stride, float* acc) {
  for (int c = 0; c < d; c += 16) {
    const bool two = c + 16 <= d;
    __m256 a[kG][2];
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      a[j][0] = _mm256_loadu_ps(acc + j * d + c);
      a[j][1] = two ? _mm256_loadu_ps(acc + j * d + c + 8) : _mm256_setzero_ps();
    }
    for (int64_t t = t0; t < t1; ++t) {
      const T* v = values + t * token_stride + c;
      if (c == 0 && t + kAccumulatePrefetchRows < t1) {
        PrefetchLines(values + (t + kAccumulatePrefetchRows) * token_stride, d * sizeof(T));
      }
      const __m256 v0 = Load8(v);
      const __m256 v1 = two ? Load8(v + 8) : _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int j = 0; j < kG; ++j) {
        const __m256 w = _mm256_broadcast_ss(p + j * p_stride + t);
        a[j][0] = _mm256_fmadd_ps(w, v0, a[j][0]);
        a[j][1] = _mm256_fmadd_ps(w, v1, a[j][1]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < kG; ++j) {
      _mm256_storeu_ps(acc + j * d + c, a[j][0]);
      if (two) _mm256_storeu_ps(acc + j * d + c + 8, a[j][1]);
    }
  }
}

// acc[j][c] += sum_t p[j * p_stride + t] * values[t][c]  for j < g.
//   values rows `token_stride` elements apart; acc [g][d]; d a multiple of 8.
template <typename T>
inline void AccumulateRows(const float* p, int64_t p_stride, int g, int d, const T* values,
                           int64_t tokens, int64_t token_stride, float* acc) {
  constexpr int64_t kBlock = 512;  // tokens per pass: the block's rows stay in L2 across chunks
  for (int64_t t0 = 0; t0 < tokens; t0 += kBlock) {
    const int64_t t1 = std::min(tokens, t0 + kBlock);
    ForRowTiles(g, [&](auto rows, int j0) {
      AccumulateRowsTile<rows.value>(p + j0 * p_stride, p_stride, d, values, t0, t1, token_stride,
                                     acc + static_cast<int64_t>(j0) * d);
    });
  }
}

}  // namespace kvt::kernels::internal
