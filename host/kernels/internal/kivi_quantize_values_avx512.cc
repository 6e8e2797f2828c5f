// Value quantization on the AVX-512 path (kivi_avx512_ops.h).
//
// Rows are (token, KV head) runs of head_dim channels, quantized per value group. The fast path
// (value_group a multiple of 16 dividing head_dim in at most 16 groups, head_dim a multiple of 64:
// Llama's 128 with groups of 16..128) takes 16 groups at a time: their min/max vectors are reduced
// together by a transposing tree (45 operations for 16 horizontal reductions instead of 16 x 8),
// the params of all 16 come out of one MakeParams, and the codes of 64 channels at a time are
// packed to bytes with whole-register packs and one permutation (kivi_layout.h: channel c at bit
// c * bits). Other layouts take QuantizeValueRowsGeneric. No software prefetch: the rows are read
// in address order and the hardware prefetcher streams them (measured here, one thread, 32K tokens:
// 7.1 ms without, 7.3 ms with one prefetch per row, 8.1 ms with one per line). Pass 1 and the
// params take about 60% of the time at 2 and 4 bits (thread CPU time, one core); converting 16
// lanes at once there instead of two 8-lane halves, and reading the first reduction level back as
// the 32-byte halves it was stored in (store forwarding), each changed it by under 5%.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/kernels/internal/kivi_avx512_ops.h"

namespace kvt::kernels::internal::avx512 {
namespace {

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
      const __m128i w16 = _mm_maddubs_epi16(b, _mm_set1_epi16(0x0401));  // c0 + 4 c1
      packed =
          _mm_cvtepi32_epi8(_mm_madd_epi16(w16, _mm_set1_epi32(0x00100001)));  // + 16 (c2 + 4 c3)
    } else if constexpr (kBits == 4) {
      packed = _mm_cvtepi16_epi8(_mm_maddubs_epi16(b, _mm_set1_epi16(0x1001)));  // c0 + 16 c1
    } else {
      packed = b;
    }
    _mm_mask_storeu_epi8(p, static_cast<__mmask16>((1u << bytes) - 1), packed);
  }
}

// Loads 16 codes (or 8: `valid`) of the stream starting at code `first` (a multiple of 8).

// `rows` (token, head) rows of head_dim channels; row r at values + (r / kv_heads) * token_stride +
// (r % kv_heads) * head_dim. Min/max per value group, the params of all the rows' groups at once
// (16 per vector), then codes. Any layout.
template <int kBits>
void QuantizeValueRowsGeneric(const KiviLayout& l, const Half* values, int64_t token_stride,
                              int64_t first_row, int64_t rows, uint8_t* codes, Half* scale,
                              Half* zero) {
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
            StoreValueCodes<kBits>(out + c * kBits / 8,
                                   Codes(LoadHalves(x + c, 0xffff), z, iv, levels), kLanes);
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

// The 4 x 4 transpose of 16 units (out unit 4k + L = in unit 4L + k): undoes the lane
// interleaving of the 128-bit-lane packs below.
constexpr int kTranspose4x4[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// Packs the codes of 64 consecutive channels (q_s: channels 16 s .. 16 s + 15, int32 lanes) into
// 8 * kBits bytes at p. Above 1 bit a negative lane packs as 0 (unsigned saturation), so the
// codes may come from CodesBeforeUnsignedPack.
template <int kBits>
inline void Pack64(__m512i q0, __m512i q1, __m512i q2, __m512i q3, uint8_t* p) {
  if constexpr (kBits == 1) {
    const uint64_t bits = static_cast<uint64_t>(_mm512_test_epi32_mask(q0, q0)) |
                          static_cast<uint64_t>(_mm512_test_epi32_mask(q1, q1)) << 16 |
                          static_cast<uint64_t>(_mm512_test_epi32_mask(q2, q2)) << 32 |
                          static_cast<uint64_t>(_mm512_test_epi32_mask(q3, q3)) << 48;
    std::memcpy(p, &bits, 8);
  } else {
    // Per 128-bit lane L: dword k holds codes 4L .. 4L + 3 of q_k, one per byte.
    const __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(q0, q1), _mm512_packus_epi32(q2, q3));
    if constexpr (kBits == 2) {
      const __m512i w = _mm512_maddubs_epi16(b, _mm512_set1_epi16(0x0401));   // c0 + 4 c1
      const __m512i d = _mm512_madd_epi16(w, _mm512_set1_epi32(0x00100001));  // + 16 (c2 + 4 c3)
      const __m128i idx = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                       _mm_shuffle_epi8(_mm512_cvtepi32_epi8(d), idx));
    } else if constexpr (kBits == 4) {
      const __m512i w = _mm512_maddubs_epi16(b, _mm512_set1_epi16(0x1001));  // c0 + 16 c1
      const __m256i idx = _mm256_setr_epi16(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                          _mm256_permutexvar_epi16(idx, _mm512_cvtepi16_epi8(w)));
    } else {
      const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      _mm512_storeu_si512(p, _mm512_permutexvar_epi32(idx, b));
    }
  }
}

// One level of the transposing reduction: (a, b) -> op of a's and b's halves / quarters.
template <bool kMin>
inline __m512 Op(__m512 a, __m512 b) {
  return kMin ? _mm512_min_ps(a, b) : _mm512_max_ps(a, b);
}
// t3[8 * slot ..]: the first level, op(lanes 8-15, lanes 0-7), of group i's 16-lane vector, in
// slot kTranspose4x4[i] (computed on 8-lane halves as the groups are read: no shuffle). Returns
// lane i = min (or max) over the 16 lanes of group i's vector, in exactly the pairs and order of
// GCC's _mm512_reduce_min_ps (op(hi, lo) over 256- then 128-bit halves, then op(e0, e2), op(e1,
// e3), and op of those two), which the previous code used per group: min_ps/max_ps return their
// second operand for NaN and for zeros of either sign, so this keeps even those outputs unchanged.
template <bool kMin>
inline __m512 Reduce16(const float* t3) {
  __m512 s[4], t[2];
  for (int i = 0; i < 4; ++i) {  // 128-bit lane L: op(hi, lo) of the 8 partials of slot 4i + L
    const __m512 a = _mm512_load_ps(t3 + 32 * i), b = _mm512_load_ps(t3 + 32 * i + 16);
    s[i] = Op<kMin>(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)),
                    _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  }
  for (int i = 0; i < 2;
       ++i) {  // lane L, elements 0-1: op(e0, e2), op(e1, e3) of slot 8i + L, 2-3: of 8i + 4 + L
    t[i] = Op<kMin>(_mm512_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                    _mm512_shuffle_ps(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // lane 4L + e: slot 4e + L, which holds group 4L + e.
  return Op<kMin>(_mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                  _mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

bool FastLayout(const KiviLayout& l) {
  const int d = l.shape.head_dim, vg = l.value_group;
  return vg % kLanes == 0 && d % 64 == 0 && kLanes % (d / vg) == 0;
}

// `rows` (token, head) rows, row r at values + (r / kv_heads) * token_stride + (r % kv_heads) *
// head_dim, on FastLayout(l): batches of 16 groups (16 / groups-per-row whole rows).
template <int kBits>
void QuantizeValueRowsFast(const KiviLayout& l, const Half* values, int64_t token_stride,
                           int64_t rows, uint8_t* codes, Half* scale, Half* zero) {
  const int h = l.shape.kv_heads, d = l.shape.head_dim, vg = l.value_group, ng = l.ValueGroups();
  const int batch_rows = kLanes / ng;
  const int64_t row_bytes = l.ValueTokenCodeBytes();
  const __m512 levels = _mm512_set1_ps(static_cast<float>(l.levels()));
  auto row_ptr = [&](int64_t r) { return values + (r / h) * token_stride + (r % h) * d; };
  alignas(64) float lo3[kLanes * 8], hi3[kLanes * 8];  // [slot][8]: first reduction level
  alignas(64) float zf[kLanes], inv[kLanes];
  // Per 16-channel vector of a row: its value group (head_dim <= 1024 by AttentionShape).
  int vec_group[1024 / kLanes];
  for (int i = 0; i < d / kLanes; ++i) vec_group[i] = i * kLanes / vg;
  const int vecs_per_group = vg / kLanes;
  auto load8 = [](const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  };
  for (int64_t r0 = 0; r0 < rows; r0 += batch_rows) {
    const int nr = static_cast<int>(std::min<int64_t>(batch_rows, rows - r0));
    for (int i = nr * ng; i < kLanes; ++i) {
      _mm256_store_ps(lo3 + 8 * kTranspose4x4[i], _mm256_setzero_ps());
      _mm256_store_ps(hi3 + 8 * kTranspose4x4[i], _mm256_setzero_ps());
    }
    for (int r = 0; r < nr; ++r) {
      const Half* x = row_ptr(r0 + r);
      for (int k = 0; k < ng; ++k, x += vg) {
        // Lanes 0-7 and 8-15 of the group's 16-lane min/max (same operations as on 16 lanes),
        // then the first reduction level op(8-15, 0-7).
        __m256 al = load8(x), ah = load8(x + 8), bl = al, bh = ah;
        for (int i = 1; i < vecs_per_group; ++i) {
          const __m256 vl = load8(x + i * kLanes), vh = load8(x + i * kLanes + 8);
          al = _mm256_min_ps(al, vl);
          ah = _mm256_min_ps(ah, vh);
          bl = _mm256_max_ps(bl, vl);
          bh = _mm256_max_ps(bh, vh);
        }
        const int slot = kTranspose4x4[r * ng + k];
        _mm256_store_ps(lo3 + 8 * slot, _mm256_min_ps(ah, al));
        _mm256_store_ps(hi3 + 8 * slot, _mm256_max_ps(bh, bl));
      }
    }
    const Params p = MakeParams(Reduce16<true>(lo3), Reduce16<false>(hi3), levels);
    const __mmask16 m = LaneMask(nr * ng);
    StoreHalves(scale + r0 * ng, p.scale, m);
    StoreHalves(zero + r0 * ng, p.zero, m);
    _mm512_store_ps(zf, p.zero);
    _mm512_store_ps(inv, p.inv);
    for (int r = 0; r < nr; ++r) {
      const Half* x = row_ptr(r0 + r);
      uint8_t* out = codes + (r0 + r) * row_bytes;
      const float* z = zf + r * ng;
      const float* iv = inv + r * ng;
      for (int i = 0; i < d / kLanes; i += 4, x += 4 * kLanes, out += 8 * kBits) {
        if constexpr (kBits == 1) {  // the compare masks are the packed codes (channel c at bit c)
          auto bits = [&](int s) {
            const int grp = vec_group[i + s];
            return static_cast<uint64_t>(OneBitCodes(LoadHalves(x + s * kLanes, 0xffff), _mm512_set1_ps(z[grp]),
                                                     _mm512_set1_ps(iv[grp])));
          };
          const uint64_t packed = bits(0) | bits(1) << 16 | bits(2) << 32 | bits(3) << 48;
          std::memcpy(out, &packed, 8);
          continue;
        }
        auto code = [&](int s) {
          const int grp = vec_group[i + s];
          return CodesBeforeUnsignedPack(LoadHalves(x + s * kLanes, 0xffff), _mm512_set1_ps(z[grp]),
                                         _mm512_set1_ps(iv[grp]), levels);
        };
        Pack64<kBits>(code(0), code(1), code(2), code(3), out);
      }
    }
  }
}

}  // namespace

template <int kBits>
void QuantizeValues(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t tokens,
                    uint8_t* codes, Half* scale, Half* zero) {
  const int64_t rows = tokens * l.shape.kv_heads;
  if (FastLayout(l)) {
    QuantizeValueRowsFast<kBits>(l, values, token_stride, rows, codes, scale, zero);
  } else {
    QuantizeValueRowsGeneric<kBits>(l, values, token_stride, 0, rows, codes, scale, zero);
  }
}

template void QuantizeValues<1>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                                Half*);
template void QuantizeValues<2>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                                Half*);
template void QuantizeValues<4>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                                Half*);
template void QuantizeValues<8>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                                Half*);

}  // namespace kvt::kernels::internal::avx512
