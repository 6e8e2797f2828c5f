// The AVX-512 (F/BW/VL + FMA + F16C) path of kivi_quantize_paths.h, compiled with those flags
// only and chosen at run time by kivi_quantize.cc. 16 channels per vector; the head_dim % 16 == 8
// tails run on masked lanes.
//
// Memory order (why it is fast): for keys, a group of G tokens is G whole token rows, and its
// codes and params are one channel-linear run ([kv_heads * head_dim] channels, KV heads
// included), so a group is processed as one block: the min/max pass sweeps the rows in address
// order (the hardware prefetcher streams them), the code pass re-reads them from L1/L2. Values
// are row-sequential by nature. Dequantized keys (4 bytes per element, the bulk of the traffic)
// are built in a cache-resident staging block and, when `stream` is set, written out with
// non-temporal stores, so DRAM sees each output byte once (no read-for-ownership); dequantized
// values are written in place with plain stores (measured faster, see DequantizeValues).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "host/kernels/internal/kivi_quantize_paths.h"

namespace kvt::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kStageBytes = 256 << 10;  // staging block for dequantized rows (in L2)
// Software prefetch distance for the fp16 input streams. Demand loads alone keep too few lines in
// flight to stream from DRAM (measured here: ~3 GB/s per core for a load loop vs ~20 GB/s for
// memcpy); prefetching this far ahead overlaps many more misses.
constexpr int64_t kPrefetchBytes = 16 << 10;

// Prefetches the 64-byte lines of [p, p + bytes).
void PrefetchLines(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

__mmask16 LaneMask(int64_t valid) {
  return valid >= kLanes ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << valid) - 1);
}
__m512 LoadHalves(const Half* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
void StoreHalves(Half* p, __m512 v, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

// kivi_layout.h's parameters for 16 groups at once: scale and zero rounded through fp16, 1/scale
// (0 where scale is 0). Same operations, same order as the AVX2 path and the CUDA twin.
struct Params {
  __m512 scale, zero, inv;
};
Params MakeParams(__m512 mn, __m512 mx, __m512 levels) {
  Params p;
  const __m512 raw = _mm512_div_ps(_mm512_sub_ps(mx, mn), levels);
  p.scale = _mm512_cvtph_ps(_mm512_cvtps_ph(raw, _MM_FROUND_TO_NEAREST_INT));
  p.zero = _mm512_cvtph_ps(_mm512_cvtps_ph(mn, _MM_FROUND_TO_NEAREST_INT));
  const __mmask16 nonzero = _mm512_cmp_ps_mask(p.scale, _mm512_setzero_ps(), _CMP_GT_OQ);
  p.inv = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), p.scale);
  return p;
}
// code = clamp(rint((x - zero) * inv), 0, levels); max(c, 0) gives 0 for NaN like the AVX2 path.
__m512i Codes(__m512 x, __m512 zero, __m512 inv, __m512 levels) {
  __m512 c = _mm512_mul_ps(_mm512_sub_ps(x, zero), inv);
  c = _mm512_roundscale_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  c = _mm512_min_ps(_mm512_max_ps(c, _mm512_setzero_ps()), levels);
  return _mm512_cvtps_epi32(c);
}

// Lanes 0-7 = a, lanes 8-15 = b.
__m512 SplitBroadcast(float a, float b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)),
                                             _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

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

// One group: `row` channels (all KV heads), G tokens `token_stride` apart.
//   codes [row][G * kBits / 8]   scale, zero [row]
// Both passes walk the token rows in address order (column-block order would revisit G rows
// 4 KiB apart, which all land in one L1 set); codes collect in a [word][channel] tile that is
// then written channel-major.
template <int kBits>
void QuantizeKeyGroup(const KiviLayout& l, const Half* keys, int64_t token_stride, uint8_t* codes,
                      Half* scale, Half* zero) {
  constexpr int kPerWord = 32 / kBits;
  constexpr int64_t kChunk = 512;  // channels per pass (the tile and params stay in L1)
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int g = l.key_group;
  const KeyStreamGeometry geo(l);
  const int64_t channel_bytes = geo.channel_bytes;
  const int words = geo.words, full_words = geo.full_words, tail_bytes = geo.tail_bytes;
  const __m512 levels = _mm512_set1_ps(static_cast<float>(l.levels()));
  alignas(64) float mn[kChunk], mx[kChunk], zf[kChunk], inv[kChunk];
  alignas(64) uint32_t tile[8192];  // [word][channel]
  for (int64_t c0 = 0; c0 < row; c0 += kChunk) {
    const int64_t n = std::min(kChunk, row - c0);
    // A chunk narrow enough that words * n fits the tile (wide groups at 8 bits: fewer channels).
    const int64_t span = std::min<int64_t>(n, static_cast<int64_t>(sizeof(tile) / sizeof(tile[0])) / words / kLanes * kLanes);
    for (int64_t s0 = 0; s0 < n; s0 += span) {
      const int64_t m = std::min(span, n - s0);
      const int64_t base = c0 + s0;
      for (int64_t c = 0; c < m; c += kLanes) {
        _mm512_store_ps(mn + c, _mm512_set1_ps(INFINITY));
        _mm512_store_ps(mx + c, _mm512_set1_ps(-INFINITY));
      }
      const int64_t ahead_rows = std::max<int64_t>(1, kPrefetchBytes / (2 * token_stride));
      for (int j = 0; j < g; ++j) {
        const Half* x = keys + j * token_stride + base;
        PrefetchLines(x + ahead_rows * token_stride, 2 * m);  // may reach past the range: harmless
        for (int64_t c = 0; c < m; c += kLanes) {
          const __m512 v = LoadHalves(x + c, LaneMask(m - c));
          _mm512_store_ps(mn + c, _mm512_min_ps(_mm512_load_ps(mn + c), v));
          _mm512_store_ps(mx + c, _mm512_max_ps(_mm512_load_ps(mx + c), v));
        }
      }
      for (int64_t c = 0; c < m; c += kLanes) {
        const Params p = MakeParams(_mm512_load_ps(mn + c), _mm512_load_ps(mx + c), levels);
        StoreHalves(scale + base + c, p.scale, LaneMask(m - c));
        StoreHalves(zero + base + c, p.zero, LaneMask(m - c));
        _mm512_store_ps(zf + c, p.zero);
        _mm512_store_ps(inv + c, p.inv);
      }
      const int64_t mp = (m + kLanes - 1) / kLanes * kLanes;  // tile row pitch
      // Token j's code goes to bit (j % kPerWord) * kBits of word j / kPerWord.
      for (int j = 0; j < g; ++j) {
        const Half* x = keys + j * token_stride + base;
        uint32_t* t = tile + static_cast<int64_t>(j / kPerWord) * mp;
        const __m128i shift = _mm_cvtsi32_si128((j % kPerWord) * kBits);
        const bool first = j % kPerWord == 0;
        for (int64_t c = 0; c < m; c += kLanes) {
          const __m512i q = _mm512_sll_epi32(
              Codes(LoadHalves(x + c, LaneMask(m - c)), _mm512_load_ps(zf + c), _mm512_load_ps(inv + c), levels),
              shift);
          __m512i* dst = reinterpret_cast<__m512i*>(t + c);
          _mm512_store_si512(dst, first ? q : _mm512_or_si512(_mm512_load_si512(dst), q));
        }
      }
      for (int64_t c = 0; c < m; ++c) {
        uint8_t* dst = codes + (base + c) * channel_bytes;
        for (int w = 0; w < full_words; ++w) std::memcpy(dst + 4 * w, tile + w * mp + c, 4);
        if (tail_bytes) std::memcpy(dst + 4 * full_words, tile + full_words * mp + c, tail_bytes);
      }
    }
  }
}

template <int kBits>
void QuantizeKeys(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                  uint8_t* codes, Half* scale, Half* zero) {
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int64_t group_code_bytes = row * l.key_group * kBits / 8;
  for (int64_t grp = 0; grp < groups; ++grp) {
    QuantizeKeyGroup<kBits>(l, keys + grp * l.key_group * token_stride, token_stride,
                            codes + grp * group_code_bytes, scale + grp * row, zero + grp * row);
  }
}

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

// Packs 16 codes (int32 lanes, channel order) into 2 * kBits bytes at p; `valid` is 16 or 8.
template <int kBits>
void StoreValueCodes(uint8_t* p, __m512i q, int valid) {
  const size_t bytes = static_cast<size_t>(valid) * kBits / 8;
  if constexpr (kBits == 1) {
    const uint16_t bitsv = _mm512_test_epi32_mask(q, q);
    std::memcpy(p, &bitsv, bytes);
  } else {
    const __m128i b = _mm512_cvtepi32_epi8(q);  // code i in byte i
    __m128i packed;
    if constexpr (kBits == 2) {
      const __m128i w16 = _mm_maddubs_epi16(b, _mm_set1_epi16(0x0401));         // c0 + 4 c1
      packed = _mm_cvtepi32_epi8(_mm_madd_epi16(w16, _mm_set1_epi32(0x00100001)));  // + 16 (c2 + 4 c3)
    } else if constexpr (kBits == 4) {
      packed = _mm_cvtepi16_epi8(_mm_maddubs_epi16(b, _mm_set1_epi16(0x1001)));  // c0 + 16 c1
    } else {
      packed = b;
    }
    _mm_mask_storeu_epi8(p, static_cast<__mmask16>((1u << bytes) - 1), packed);
  }
}

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

// `rows` (token, head) rows of head_dim channels; row r at values + (r / kv_heads) * token_stride +
// (r % kv_heads) * head_dim. Min/max per value group, the params of all the rows' groups at once
// (16 per vector), then codes.
template <int kBits>
void QuantizeValueRows(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t first_row,
                       int64_t rows, uint8_t* codes, Half* scale, Half* zero) {
  const int h = l.shape.kv_heads, d = l.shape.head_dim, vg = l.value_group, ng = l.ValueGroups();
  const __m512 levels = _mm512_set1_ps(static_cast<float>(l.levels()));
  constexpr int kMaxGroups = 2048;  // params per batch on the stack
  alignas(64) float mn[kMaxGroups + kLanes], mx[kMaxGroups + kLanes], zf[kMaxGroups + kLanes],
      inv[kMaxGroups + kLanes];
  const int64_t batch_rows = std::max<int64_t>(1, kMaxGroups / ng);
  for (int64_t r0 = 0; r0 < rows; r0 += batch_rows) {
    const int64_t nr = std::min(batch_rows, rows - r0);
    auto row_ptr = [&](int64_t r) {
      const int64_t i = first_row + r0 + r;
      return values + (i / h) * token_stride + (i % h) * d;
    };
    const int64_t ahead = std::max<int64_t>(1, kPrefetchBytes / (2 * d));
    for (int64_t r = 0; r < nr; ++r) {
      const Half* x = row_ptr(r);
      PrefetchLines(row_ptr(r + ahead), 2 * d);  // may reach past the range: harmless
      for (int grp = 0; grp < ng; ++grp) {
        __m512 lo = _mm512_set1_ps(INFINITY), hi = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < vg; c += kLanes) {
          const __mmask16 m = LaneMask(vg - c);
          const __m512 v = LoadHalves(x + grp * vg + c, m);
          lo = _mm512_mask_min_ps(lo, m, lo, v);
          hi = _mm512_mask_max_ps(hi, m, hi, v);
        }
        mn[r * ng + grp] = _mm512_reduce_min_ps(lo);
        mx[r * ng + grp] = _mm512_reduce_max_ps(hi);
      }
    }
    const int64_t np = nr * ng;
    for (int64_t i = 0; i < np; i += kLanes) {
      const __mmask16 m = LaneMask(np - i);
      const Params p = MakeParams(_mm512_mask_loadu_ps(_mm512_setzero_ps(), m, mn + i),
                                  _mm512_mask_loadu_ps(_mm512_setzero_ps(), m, mx + i), levels);
      StoreHalves(scale + r0 * ng + i, p.scale, m);
      StoreHalves(zero + r0 * ng + i, p.zero, m);
      _mm512_store_ps(zf + i, p.zero);
      _mm512_store_ps(inv + i, p.inv);
    }
    const bool uniform = vg % kLanes == 0;  // each 16-lane block lies in one value group
    for (int64_t r = 0; r < nr; ++r) {
      const Half* x = row_ptr(r);
      uint8_t* out = codes + (r0 + r) * l.ValueTokenCodeBytes();
      if (uniform) {
        for (int grp = 0; grp < ng; ++grp) {
          const __m512 z = _mm512_set1_ps(zf[r * ng + grp]), iv = _mm512_set1_ps(inv[r * ng + grp]);
          for (int c = grp * vg; c < (grp + 1) * vg; c += kLanes) {
            StoreValueCodes<kBits>(out + c * kBits / 8, Codes(LoadHalves(x + c, 0xffff), z, iv, levels), kLanes);
          }
        }
        continue;
      }
      for (int c = 0; c < d; c += kLanes) {
        const int valid = std::min(kLanes, d - c);
        // Each 8-lane half lies in one value group (vg is a multiple of 8).
        const int g0 = c / vg, g1 = std::min(c + 8, d - 8) / vg;
        const float* zp = zf + r * ng;
        const float* ip = inv + r * ng;
        const __m512 z = SplitBroadcast(zp[g0], zp[g1]);
        const __m512 iv = SplitBroadcast(ip[g0], ip[g1]);
        const __m512i q = Codes(LoadHalves(x + c, LaneMask(valid)), z, iv, levels);
        StoreValueCodes<kBits>(out + c * kBits / 8, q, valid);
      }
    }
  }
}

template <int kBits>
void QuantizeValues(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t tokens,
                    uint8_t* codes, Half* scale, Half* zero) {
  QuantizeValueRows<kBits>(l, values, token_stride, 0, tokens * l.shape.kv_heads, codes, scale, zero);
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
  static const KiviQuantizePath path =
      KVT_KIVI_QUANTIZE_PATH(QuantizeKeys, QuantizeValues, DequantizeKeys, DequantizeValues);
  return path;
}

}  // namespace kvt::kernels::internal
