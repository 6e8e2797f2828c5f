// The AVX-512 (F/BW/VL + FMA + F16C) path of kivi_quantize_paths.h, compiled with those flags
// only and chosen at run time by kivi_quantize.cc. 16 channels per vector; the head_dim % 16 == 8
// tails run on masked lanes. The quantizers live in kivi_quantize_keys_avx512.cc and
// kivi_quantize_values_avx512.cc; this file holds the dequantizers and assembles the path.
//
// Dequantized keys (4 bytes per element, the bulk of the traffic) are built in a cache-resident
// staging block and, when `stream` is set, written out with non-temporal stores, so DRAM sees each
// output byte once (no read-for-ownership); dequantized values are written in place with plain
// stores (measured faster, see DequantizeValues).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "host/kernels/internal/kivi_avx512_ops.h"

namespace kvt::kernels::internal {
namespace {

using avx512::kLanes;
using avx512::LaneMask;
using avx512::LoadHalves;
using avx512::SplitBroadcast;

constexpr int64_t kStageBytes = 256 << 10;  // staging block for dequantized rows (in L2)

// ---- non-temporal output ----

// Copies n floats to dst: plain stores up to the first 64-byte boundary and after the last one,
// non-temporal stores between (dst needs only float alignment).
void StreamFloats(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  const int64_t head = ((64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64) / sizeof(float);
  for (; i < std::min(head, n); ++i) dst[i] = src[i];
  for (; i + kLanes <= n; i += kLanes) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// A per-thread staging block of floats (kept between calls; grows once).
float* Stage(int64_t floats) {
  thread_local std::vector<float> stage;
  if (static_cast<int64_t>(stage.size()) < floats) stage.resize(static_cast<size_t>(floats));
  return stage.data();
}

// ---- keys ----

// One group into out [G][row] (row-major, rows `row` floats apart), written in address order:
// the channel-major codes are first turned into a [word][channel] tile.
template <int kBits>
void DequantizeKeyGroup(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                        const Half* zero, float* out) {
  constexpr int kPerWord = 32 / kBits;
  constexpr int64_t kTileWords = 8192;
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int g = l.key_group;
  const KeyStreamGeometry geo(l);
  const int64_t channel_bytes = geo.channel_bytes;
  const int words = geo.words, full_words = geo.full_words, tail_bytes = geo.tail_bytes;
  const __m512i mask = _mm512_set1_epi32((1 << kBits) - 1);
  alignas(64) uint32_t tile[kTileWords];
  alignas(64) float sf[kTileWords / 8], zf[kTileWords / 8];
  const int64_t span = std::min<int64_t>({row, kTileWords / words / kLanes * kLanes, kTileWords / 8});
  for (int64_t c0 = 0; c0 < row; c0 += span) {
    const int64_t m = std::min(span, row - c0);
    const int64_t mp = (m + kLanes - 1) / kLanes * kLanes;
    for (int64_t c = 0; c < m; ++c) {
      const uint8_t* src = codes + (c0 + c) * channel_bytes;
      for (int w = 0; w < full_words; ++w) std::memcpy(tile + w * mp + c, src + 4 * w, 4);
      if (tail_bytes) {
        tile[full_words * mp + c] = 0;
        std::memcpy(tile + full_words * mp + c, src + 4 * full_words, tail_bytes);
      }
    }
    for (int64_t c = 0; c < m; c += kLanes) {
      _mm512_store_ps(sf + c, LoadHalves(scale + c0 + c, LaneMask(m - c)));
      _mm512_store_ps(zf + c, LoadHalves(zero + c0 + c, LaneMask(m - c)));
    }
    for (int j = 0; j < g; ++j) {
      const uint32_t* t = tile + static_cast<int64_t>(j / kPerWord) * mp;
      const __m128i shift = _mm_cvtsi32_si128((j % kPerWord) * kBits);
      float* o = out + j * row + c0;
      for (int64_t c = 0; c < m; c += kLanes) {
        const __m512i q = _mm512_and_si512(_mm512_srl_epi32(_mm512_load_si512(t + c), shift), mask);
        _mm512_mask_storeu_ps(o + c, LaneMask(m - c),
                              _mm512_fmadd_ps(_mm512_cvtepi32_ps(q), _mm512_load_ps(sf + c), _mm512_load_ps(zf + c)));
      }
    }
  }
}

template <int kBits>
void DequantizeKeys(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                    int64_t groups, float* keys, bool stream) {
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int64_t group_floats = row * l.key_group;
  const int64_t group_code_bytes = group_floats * kBits / 8;
  const bool staged = stream && group_floats * static_cast<int64_t>(sizeof(float)) <= kStageBytes;
  float* stage = staged ? Stage(group_floats) : nullptr;
  for (int64_t grp = 0; grp < groups; ++grp) {
    float* dst = keys + grp * group_floats;
    DequantizeKeyGroup<kBits>(l, codes + grp * group_code_bytes, scale + grp * row, zero + grp * row,
                              staged ? stage : dst);
    if (staged) StreamFloats(dst, stage, group_floats);
  }
  if (staged) _mm_sfence();
}

// ---- values ----

// Loads 16 codes (or 8: `valid`) of the stream starting at code `first` (a multiple of 8).
template <int kBits>
__m512i LoadValueCodes(const uint8_t* stream, int64_t first, int valid) {
  const uint8_t* p = stream + first * kBits / 8;
  const __m128i bytes = _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << (valid * kBits / 8)) - 1), p);
  if constexpr (kBits == 8) {
    return _mm512_cvtepu8_epi32(bytes);
  } else {
    // lane i: word (i * kBits) / 32 of the 16 bytes, shifted right by (i * kBits) % 32.
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i bit = _mm512_mullo_epi32(lane, _mm512_set1_epi32(kBits));
    const __m512i words = _mm512_permutexvar_epi32(_mm512_srli_epi32(bit, 5), _mm512_castsi128_si512(bytes));
    return _mm512_and_si512(_mm512_srlv_epi32(words, _mm512_and_si512(bit, _mm512_set1_epi32(31))),
                            _mm512_set1_epi32((1 << kBits) - 1));
  }
}

// `rows` (token, head) rows into out [rows][head_dim].
template <int kBits>
void DequantizeValueRows(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                         int64_t rows, float* out) {
  const int d = l.shape.head_dim, vg = l.value_group, ng = l.ValueGroups();
  alignas(64) float sf[1024 / 8 + kLanes], zf[1024 / 8 + kLanes];
  for (int64_t r = 0; r < rows; ++r) {
    for (int i = 0; i < ng; i += kLanes) {
      const __mmask16 m = LaneMask(ng - i);
      _mm512_store_ps(sf + i, LoadHalves(scale + r * ng + i, m));
      _mm512_store_ps(zf + i, LoadHalves(zero + r * ng + i, m));
    }
    const uint8_t* stream = codes + r * l.ValueTokenCodeBytes();
    float* o = out + r * d;
    if (vg % kLanes == 0) {  // each 16-lane block lies in one value group
      for (int c = 0; c < d; c += kLanes) {
        const __m512 q = _mm512_cvtepi32_ps(LoadValueCodes<kBits>(stream, c, kLanes));
        _mm512_storeu_ps(o + c, _mm512_fmadd_ps(q, _mm512_set1_ps(sf[c / vg]), _mm512_set1_ps(zf[c / vg])));
      }
      continue;
    }
    for (int c = 0; c < d; c += kLanes) {
      const int valid = std::min(kLanes, d - c);
      const int g0 = c / vg, g1 = std::min(c + 8, d - 8) / vg;
      const __m512 s = SplitBroadcast(sf[g0], sf[g1]);
      const __m512 z = SplitBroadcast(zf[g0], zf[g1]);
      const __m512 q = _mm512_cvtepi32_ps(LoadValueCodes<kBits>(stream, c, valid));
      _mm512_mask_storeu_ps(o + c, LaneMask(valid), _mm512_fmadd_ps(q, s, z));
    }
  }
}

// Plain stores: the output is one contiguous forward stream, and measured here (64K tokens,
// 256 MiB of floats) that ran about twice as fast as staging plus non-temporal stores, unlike
// the keys' output, which is built column-block by column-block.
template <int kBits>
void DequantizeValues(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                      int64_t tokens, float* values, bool /*stream*/) {
  DequantizeValueRows<kBits>(l, codes, scale, zero, tokens * l.shape.kv_heads, values);
}

}  // namespace

const KiviQuantizePath& KiviQuantizeAvx512() {
  static const KiviQuantizePath path = KVT_KIVI_QUANTIZE_PATH(avx512::QuantizeKeys, avx512::QuantizeValues,
                                                              DequantizeKeys, DequantizeValues);
  return path;
}

}  // namespace kvt::kernels::internal
