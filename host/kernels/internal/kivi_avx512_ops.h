// AVX-512 building blocks of the KIVI quantization path (kivi_quantize_*avx512.cc). Include only
// from files compiled with the AVX-512 flags of host/kernels/CMakeLists.txt.
//
// The rounding is kivi_layout.h's, in the same operations and order as the AVX2 and portable
// paths and the CUDA twin: the outputs are bit-identical
// (tests/unit/kernels/kivi_quantize_test.cc).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "host/kernels/half.h"
#include "host/kernels/internal/kivi_quantize_paths.h"
#include "host/kernels/internal/simd.h"  // PrefetchLines

namespace kvt::kernels::internal::avx512 {

inline constexpr int kLanes = 16;
// Software prefetch distance for the fp16 input streams. Demand loads alone keep too few lines in
// flight to stream from DRAM (measured here: ~3 GB/s per core for a load loop vs ~20 GB/s for
// memcpy); prefetching this far ahead overlaps many more misses.
inline constexpr int64_t kPrefetchBytes = 16 << 10;

// The first `valid` lanes (none when valid <= 0, all when >= 16).
inline __mmask16 LaneMask(int64_t valid) {
  if (valid <= 0) return 0;
  return valid >= kLanes ? static_cast<__mmask16>(0xffff)
                         : static_cast<__mmask16>((1u << valid) - 1);
}
inline __m512 LoadHalves(const Half* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
inline void StoreHalves(Half* p, __m512 v, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

// kivi_layout.h's parameters for 16 groups at once: scale and zero rounded through fp16, 1/scale
// (0 where scale is 0).
struct Params {
  __m512 scale, zero, inv;
};
inline Params MakeParams(__m512 mn, __m512 mx, __m512 levels) {
  Params p;
  const __m512 raw = _mm512_div_ps(_mm512_sub_ps(mx, mn), levels);
  p.scale = _mm512_cvtph_ps(_mm512_cvtps_ph(raw, _MM_FROUND_TO_NEAREST_INT));
  p.zero = _mm512_cvtph_ps(_mm512_cvtps_ph(mn, _MM_FROUND_TO_NEAREST_INT));
  const __mmask16 nonzero = _mm512_cmp_ps_mask(p.scale, _mm512_setzero_ps(), _CMP_GT_OQ);
  p.inv = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), p.scale);
  return p;
}

// code = clamp(rint((x - zero) * inv), 0, levels), as an exact small integer in a float;
// max(c, 0) gives 0 for NaN like the AVX2 path.
inline __m512 CodesF(__m512 x, __m512 zero, __m512 inv, __m512 levels) {
  __m512 c = _mm512_mul_ps(_mm512_sub_ps(x, zero), inv);
  c = _mm512_roundscale_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_min_ps(_mm512_max_ps(c, _mm512_setzero_ps()), levels);
}
inline __m512i Codes(__m512 x, __m512 zero, __m512 inv, __m512 levels) {
  return _mm512_cvtps_epi32(CodesF(x, zero, inv, levels));
}

// Codes() as int32 with two operations fewer, for a caller whose unsigned saturating pack maps
// every lane <= 0 to 0: the same code as Codes() for every input (NaN and infinities included)
// once so packed. Clamping to levels before rounding gives the same result as after (levels is an
// integer); the clamp is written min(levels, c) so that a NaN c stays NaN (min_ps returns its
// second operand then); cvtps2dq rounds to nearest even like roundscale and turns NaN and anything
// beyond the int32 range (only ever negative here) into INT_MIN; what Codes() clamps to 0 is
// negative or INT_MIN here, and the pack saturates it to 0.
inline __m512i CodesBeforeUnsignedPack(__m512 x, __m512 zero, __m512 inv, __m512 levels) {
  return _mm512_cvtps_epi32(_mm512_min_ps(levels, _mm512_mul_ps(_mm512_sub_ps(x, zero), inv)));
}

// The 1-bit codes of 16 lanes as a mask (lane i = code i), the same code as Codes() at levels 1 for
// every input: rint(v) clamped to [0, 1] is 1 exactly when v > 0.5 (0.5 itself rounds to even, 0),
// and a NaN v compares false, the 0 Codes() gives it. Three operations instead of five plus a pack.
inline __mmask16 OneBitCodes(__m512 x, __m512 zero, __m512 inv) {
  return _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_sub_ps(x, zero), inv), _mm512_set1_ps(0.5f), _CMP_GT_OQ);
}

// Lanes 0-7 = a, lanes 8-15 = b.
inline __m512 SplitBroadcast(float a, float b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)),
                                             _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

// The quantizers of this path (one per file: kivi_quantize_keys_avx512.cc,
// kivi_quantize_values_avx512.cc), instantiated for kBits = 1, 2, 4, 8; contracts as the members
// of KiviQuantizePath.
template <int kBits>
void QuantizeKeys(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                  uint8_t* codes, Half* scale, Half* zero);
template <int kBits>
void QuantizeValues(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t tokens,
                    uint8_t* codes, Half* scale, Half* zero);

}  // namespace kvt::kernels::internal::avx512
