// AVX2/FMA/F16C building blocks shared by the host kernels. Include only from .cc files compiled
// with -mavx2 -mfma -mf16c (host/kernels/CMakeLists.txt sets that for the whole library).
#pragma once

#include <immintrin.h>

#include <cmath>

#include <cstdint>
#include <cstring>

#include "host/kernels/half.h"

namespace kvt::kernels::internal {

inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline void Store8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void Store8(Half* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
// Prefetches the 64-byte lines of [p, p + bytes).
inline void PrefetchLines(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

inline float ToFloat(float f) { return f; }
inline float ToFloat(Half h) { return _cvtsh_ss(h.bits); }

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}
inline float HorizontalMin(__m256 v) {
  __m128 lo = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_min_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}
inline float HorizontalMax(__m256 v) {
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

// e^x for 8 lanes: Cody-Waite range reduction and a degree-6 polynomial (relative error < 2e-7
// on [-87, 88]); inputs below -87 flush to 0, which is what softmax wants.
inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 hi = _mm256_set1_ps(88.0f);
  const __m256 zero_mask = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2 = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  p = _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
  return _mm256_andnot_ps(zero_mask, p);
}

// Eight consecutive codes of a densely packed little-endian bit stream (code i at bit i*kBits),
// starting at code `first` (a multiple of 8), widened to int32 lanes.
template <int kBits>
inline __m256i Load8Codes(const uint8_t* stream, int64_t first) {
  const uint8_t* p = stream + first * kBits / 8;
  if constexpr (kBits == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else {
    uint32_t w = 0;
    std::memcpy(&w, p, kBits);  // 8 codes of kBits bits = kBits bytes
    const __m256i shifts = _mm256_setr_epi32(0, kBits, 2 * kBits, 3 * kBits, 4 * kBits,
                                             5 * kBits, 6 * kBits, 7 * kBits);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(w)), shifts),
                            _mm256_set1_epi32((1 << kBits) - 1));
  }
}

// Packs eight int32 codes (each < 2^kBits) into kBits bytes of the stream at code `first`.
template <int kBits>
inline void Store8Codes(uint8_t* stream, int64_t first, __m256i codes) {
  uint8_t* p = stream + first * kBits / 8;
  if constexpr (kBits == 8) {
    const __m128i lo = _mm256_castsi256_si128(codes);
    const __m128i hi = _mm256_extracti128_si256(codes, 1);
    const __m128i w16 = _mm_packus_epi32(lo, hi);
    const __m128i w8 = _mm_packus_epi16(w16, w16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), w8);
  } else {
    const __m256i shifts = _mm256_setr_epi32(0, kBits, 2 * kBits, 3 * kBits, 4 * kBits,
                                             5 * kBits, 6 * kBits, 7 * kBits);
    const __m256i shifted = _mm256_sllv_epi32(codes, shifts);
    // OR-reduce the 8 lanes (their bits are disjoint).
    __m128i v = _mm_or_si128(_mm256_castsi256_si128(shifted), _mm256_extracti128_si256(shifted, 1));
    v = _mm_or_si128(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_or_si128(v, _mm_shuffle_epi32(v, 0xb1));
    const uint32_t w = static_cast<uint32_t>(_mm_cvtsi128_si32(v));
    std::memcpy(p, &w, kBits);
  }
}

}  // namespace kvt::kernels::internal

namespace kvt::kernels::internal {

// In-place transpose of an 8x8 float tile held in eight registers (row i -> column i).
inline void Transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Asymmetric quantization parameters for 8 groups at once (one per lane), rounded through fp16
// exactly as kivi_layout.h specifies. Returns scale, zero (as floats equal to the stored halves)
// and 1/scale (0 where scale is 0).
struct QuantParams8 {
  __m256 scale, zero, inv;
};
inline QuantParams8 MakeQuantParams8(__m256 mn, __m256 mx, float levels) {
  QuantParams8 p;
  const __m256 raw = _mm256_div_ps(_mm256_sub_ps(mx, mn), _mm256_set1_ps(levels));
  p.scale = _mm256_cvtph_ps(_mm256_cvtps_ph(raw, _MM_FROUND_TO_NEAREST_INT));
  p.zero = _mm256_cvtph_ps(_mm256_cvtps_ph(mn, _MM_FROUND_TO_NEAREST_INT));
  const __m256 nonzero = _mm256_cmp_ps(p.scale, _mm256_setzero_ps(), _CMP_GT_OQ);
  p.inv = _mm256_and_ps(nonzero, _mm256_div_ps(_mm256_set1_ps(1.0f), p.scale));
  return p;
}
inline __m256i QuantizeLanes(__m256 x, const QuantParams8& p, __m256 levels) {
  __m256 c = _mm256_mul_ps(_mm256_sub_ps(x, p.zero), p.inv);
  c = _mm256_round_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  c = _mm256_min_ps(_mm256_max_ps(c, _mm256_setzero_ps()), levels);
  return _mm256_cvtps_epi32(c);
}

}  // namespace kvt::kernels::internal
