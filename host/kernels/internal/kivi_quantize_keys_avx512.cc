// Key quantization on the AVX-512 path (kivi_avx512_ops.h).
//
// A group of G tokens is G whole token rows; its codes and params are one channel-linear run
// ([kv_heads * head_dim] channels). The group is walked in blocks of 32 channels (one 64-byte line
// of each row): min/max over the G rows in registers, the params, then the codes from the same
// lines (still in L1/L2), packed into each channel's words in registers and written with vector
// stores. Nothing is stored between the two passes, and no element is handled by scalar code.
//
// Packing: a 32-bit word holds 32 / bits tokens of one channel (token j at bit (j % per_word) *
// bits). At 1 bit each token's compare mask ORs its bit into the lanes whose code is 1
// (PackWord1). Wider codes: each 16-bit half of the word is summed as fma(code, 2^(k * bits), .)
// in float, pairwise (PackHalf), exact because every partial sum is an integer below 2^16: one
// operation per code instead of convert, shift and or. Words of 16 channels are then transposed
// to the channel-major stream layout.
//
// Memory: a block walks G rows 2 * token_stride bytes apart, which the hardware prefetcher does
// not stream; so while a group computes, the next group's lines are prefetched in address order,
// one per row visited (LinePrefetcher), and the first group is prefetched up front. Measured here
// (one thread, 32K tokens from DRAM): 7.8 ms without, 7.5 ms with two per-row prefetches of the
// block's own column, 5.3 ms in address order.
//
// What limits it (measured by thread CPU time on the 2-core EPYC, one core, Llama-3.1-8B rows):
// about 7-8 G elements/s at 1K-4K tokens (L2/L3) for 1, 2 and 4 bits alike, so not the arithmetic:
// min/max on the raw fp16 bits (three integer operations per row instead of two conversions and
// four float min/max) and clamp-free codes changed it by -3..+5% and were dropped. The token
// stride is: Llama's 2 KiB rows put every row's line of a block into one of two L1 sets, so the
// G rows of pass 1 are gone from L1 when pass 2 reads them; the same rows 2112 bytes apart run
// 15-40% faster. Staging the block's lines in a contiguous tile during pass 1 recovers part of
// that at 1 bit (+18-24%), which does it; at 2 and 4 bits it gained 3-10% and lost 8%.
// Also tried and dropped (same measure): staging the lines converted to fp32, so that pass 2
// converts nothing (cvtph2ps issues once per cycle here), 2-bit -19% in cache but 1 and 4 bits
// +10-20% from DRAM; prefetching two groups ahead instead of one, and oneTBB chunks of 1-4 MiB
// instead of 256 KiB, both within the noise. From DRAM (128K tokens, 2 threads) each core
// quantizes at about the rate it reaches from L3, so the 2-core figure is compute, not memory.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/kernels/internal/kivi_avx512_ops.h"

namespace kvt::kernels::internal::avx512 {
namespace {

constexpr int kBlockVecs = 2;
constexpr int kBlock = kBlockVecs * kLanes;  // channels per block
constexpr int kMaxWords = 1024 * 8 / 32;     // words per channel at key_group <= 1024, 8 bits
constexpr int kMaxDirectWords = 4;

// Tokens [0, n) of one 16-channel vector (rows token_stride apart, n <= 16 / kBits) as one
// 16-bit half-word per lane, token k at bit k * kBits, held exactly in a float. A full half joins
// its codes pairwise (runs of 1, 2, 4, 8 codes, the upper run of each pair scaled by 2^(run *
// kBits)): the same sums, exact in float, with a dependency chain of log2(n) fmas instead of n - 1
// (2 bits: 3 x 4 cycles instead of 7 x 4; measured 8-13% less CPU time at 2 bits, +-2% at 4).
template <int kBits>
inline __m512 PackHalf(const Half* x, int64_t token_stride, int n, __mmask16 m, __m512 zero,
                       __m512 inv, __m512 levels) {
  constexpr int kPerHalf = 16 / kBits;
  if (n == kPerHalf) {
    __m512 c[kPerHalf];
#pragma GCC unroll 16
    for (int k = 0; k < kPerHalf; ++k) {
      c[k] = CodesF(LoadHalves(x + k * token_stride, m), zero, inv, levels);
    }
#pragma GCC unroll 4
    for (int run = 1; run < kPerHalf; run *= 2) {
      const __m512 shift = _mm512_set1_ps(static_cast<float>(1 << (run * kBits)));
#pragma GCC unroll 8
      for (int k = 0; k < kPerHalf; k += 2 * run) c[k] = _mm512_fmadd_ps(c[k + run], shift, c[k]);
    }
    return c[0];
  }
  __m512 acc = CodesF(LoadHalves(x, m), zero, inv, levels);
  for (int k = 1; k < n; ++k) {
    const __m512 c = CodesF(LoadHalves(x + k * token_stride, m), zero, inv, levels);
    acc = _mm512_fmadd_ps(c, _mm512_set1_ps(static_cast<float>(1 << (k * kBits))), acc);
  }
  return acc;
}

// The 1-bit codes of tokens [0, n) (n <= 32) of one 16-channel vector as one 32-bit word per lane,
// token k at bit k: each token's compare mask sets its bit in the lanes whose code is 1.
inline __m512i PackWord1(const Half* x, int64_t token_stride, int n, __mmask16 m, __m512 zero, __m512 inv) {
  __m512i word = _mm512_setzero_si512();
#pragma GCC unroll 32
  for (int k = 0; k < n; ++k) {
    const __mmask16 c = OneBitCodes(LoadHalves(x + k * token_stride, m), zero, inv);
    word = _mm512_mask_or_epi32(word, c, word, _mm512_set1_epi32(static_cast<int>(1u << k)));
  }
  return word;
}

// w[0..words) hold word k of 16 channels (lane = channel); out receives the channel-major
// stream [channel][words] of those 16 channels (words = 1, 2 or 4).
inline void TransposeWords(const __m512i* w, int words, __m512i* out) {
  if (words == 1) {
    out[0] = w[0];
  } else if (words == 2) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    out[0] = _mm512_permutex2var_epi32(w[0], lo, w[1]);
    out[1] = _mm512_permutex2var_epi32(w[0], hi, w[1]);
  } else {  // 4: per 128-bit lane L, u_i = words 0..3 of channel 4L + i
    const __m512i t0 = _mm512_unpacklo_epi32(w[0], w[1]), t1 = _mm512_unpackhi_epi32(w[0], w[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(w[2], w[3]), t3 = _mm512_unpackhi_epi32(w[2], w[3]);
    const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    const __m512i s0 = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i s1 = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i s2 = _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i s3 = _mm512_shuffle_i32x4(u2, u3, _MM_SHUFFLE(3, 1, 3, 1));
    out[0] = _mm512_shuffle_i32x4(s0, s1, _MM_SHUFFLE(2, 0, 2, 0));
    out[1] = _mm512_shuffle_i32x4(s2, s3, _MM_SHUFFLE(2, 0, 2, 0));
    out[2] = _mm512_shuffle_i32x4(s0, s1, _MM_SHUFFLE(3, 1, 3, 1));
    out[3] = _mm512_shuffle_i32x4(s2, s3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Walks the 64-byte lines of `rows_total` rows of `row_bytes` bytes (`stride` halves apart) in
// address order, one prefetch per Next(): a group's G * row_bytes / 64 lines over its row / 32
// blocks of G rows each, exactly one per row visited. Address order also lets the hardware
// prefetcher join in.
class LinePrefetcher {
 public:
  LinePrefetcher(const Half* first, int64_t stride, int64_t row_bytes)
      : row_(reinterpret_cast<const char*>(first)),
        stride_bytes_(2 * stride),
        row_bytes_(row_bytes) {}
  void Next() {
    _mm_prefetch(row_ + offset_, _MM_HINT_T0);
    offset_ += 64;
    if (offset_ >= row_bytes_) {
      offset_ = 0;
      row_ += stride_bytes_;
    }
  }

 private:
  const char* row_;
  int64_t stride_bytes_, row_bytes_, offset_ = 0;
};

// One group: `row` channels, G tokens `token_stride` apart; `next` is the next group's first row
// (prefetched), or null.
//   codes [row][G * kBits / 8]   scale, zero [row]
template <int kBits>
void QuantizeKeyGroup(const KiviLayout& l, const Half* keys, int64_t token_stride, const Half* next,
                      uint8_t* codes, Half* scale, Half* zero) {
  constexpr int kPerWord = 32 / kBits;
  constexpr int kPerHalf = 16 / kBits;
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int g = l.key_group;
  const KeyStreamGeometry geo(l);
  const int words = geo.words;
  // Whole 32-bit words per channel, few enough to transpose in registers; else via `tile`.
  const bool direct = geo.tail_bytes == 0 && words <= kMaxDirectWords && words != 3;
  const __m512 levels = _mm512_set1_ps(static_cast<float>(l.levels()));
  alignas(64) uint32_t tile[kMaxWords * kBlock];  // [word][block channel], when !direct
  // 1 bit: pass 1 also copies the block's lines into `staged`, contiguous, and pass 2 reads them
  // there (see the header: strided rows are gone from L1 by then). Measured by thread CPU time, one
  // core: 1-bit keys 18-24% faster at 1K-32K tokens and groups of 32-128; at 2 bits +3..10%, at 4
  // bits -8%, so only 1 bit, whose compare-mask codes do the least arithmetic per load, stages.
  constexpr int kMaxStaged = 128;
  alignas(64) Half staged[kBits == 1 ? kMaxStaged * kBlock : 1];
  const bool stage = kBits == 1 && g <= kMaxStaged;
  const int64_t pass2_stride = stage ? kBlock : token_stride;
  alignas(64) __m512i w[kBlockVecs][kMaxDirectWords];
  LinePrefetcher pre(next, token_stride, 2 * row);
  for (int64_t c0 = 0; c0 < row; c0 += kBlock) {
    const __mmask16 m[kBlockVecs] = {LaneMask(row - c0), LaneMask(row - c0 - kLanes)};
    // Pass 1, in registers (named, not an array, so that nothing is stored per row).
    __m512 lo0 = _mm512_set1_ps(INFINITY), lo1 = lo0, hi0 = _mm512_set1_ps(-INFINITY), hi1 = hi0;
    const __mmask32 m32 = static_cast<__mmask32>(m[0]) | static_cast<__mmask32>(m[1]) << 16;
    const Half* x = keys + c0;
    for (int j = 0; j < g; ++j, x += token_stride) {
      if (next) pre.Next();
      if (stage) _mm512_store_si512(staged + j * kBlock, _mm512_maskz_loadu_epi16(m32, x));
      const __m512 x0 = LoadHalves(x, m[0]), x1 = LoadHalves(x + kLanes, m[1]);
      lo0 = _mm512_min_ps(lo0, x0);
      hi0 = _mm512_max_ps(hi0, x0);
      lo1 = _mm512_min_ps(lo1, x1);
      hi1 = _mm512_max_ps(hi1, x1);
    }
    const Params p[kBlockVecs] = {MakeParams(lo0, hi0, levels), MakeParams(lo1, hi1, levels)};
    for (int v = 0; v < kBlockVecs; ++v) {
      StoreHalves(scale + c0 + v * kLanes, p[v].scale, m[v]);
      StoreHalves(zero + c0 + v * kLanes, p[v].zero, m[v]);
    }
    for (int wd = 0; wd < words; ++wd) {
      const int j0 = wd * kPerWord;
      const int n = std::min(kPerWord, g - j0);
      for (int v = 0; v < kBlockVecs; ++v) {
        const Half* xj = (stage ? staged : keys + c0) + j0 * pass2_stride + v * kLanes;
        __m512i word;
        if constexpr (kBits == 1) {
          word = PackWord1(xj, pass2_stride, n, m[v], p[v].zero, p[v].inv);
        } else {
          word = _mm512_cvtps_epi32(PackHalf<kBits>(xj, pass2_stride, std::min(n, kPerHalf), m[v],
                                                    p[v].zero, p[v].inv, levels));
          if (n > kPerHalf) {
            const __m512 upper = PackHalf<kBits>(xj + kPerHalf * pass2_stride, pass2_stride,
                                                 n - kPerHalf, m[v], p[v].zero, p[v].inv, levels);
            word = _mm512_or_si512(word, _mm512_slli_epi32(_mm512_cvtps_epi32(upper), 16));
          }
        }
        if (direct) {
          w[v][wd] = word;
        } else {
          _mm512_store_si512(tile + wd * kBlock + v * kLanes, word);
        }
      }
    }
    if (direct) {
      for (int v = 0; v < kBlockVecs; ++v) {
        const int64_t valid = std::clamp<int64_t>(row - c0 - v * kLanes, 0, kLanes);
        if (valid == 0) break;
        __m512i out[kMaxDirectWords];
        TransposeWords(w[v], words, out);
        uint8_t* dst = codes + (c0 + v * kLanes) * geo.channel_bytes;
        for (int k = 0; k < words; ++k) {
          _mm512_mask_storeu_epi32(dst + 64 * k, LaneMask(valid * words - k * kLanes), out[k]);
        }
      }
    } else {
      const int64_t valid = std::min<int64_t>(kBlock, row - c0);
      for (int64_t c = 0; c < valid; ++c) {
        uint8_t* dst = codes + (c0 + c) * geo.channel_bytes;
        for (int k = 0; k < geo.full_words; ++k) std::memcpy(dst + 4 * k, tile + k * kBlock + c, 4);
        if (geo.tail_bytes)
          std::memcpy(dst + 4 * geo.full_words, tile + geo.full_words * kBlock + c, geo.tail_bytes);
      }
    }
  }
}

}  // namespace

template <int kBits>
void QuantizeKeys(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                  uint8_t* codes, Half* scale, Half* zero) {
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int64_t group_code_bytes = row * l.key_group * kBits / 8;
  const int64_t group_stride = l.key_group * token_stride;
  if (groups > 0) {
    for (int j = 0; j < l.key_group; ++j) PrefetchLines(keys + j * token_stride, 2 * row);
  }
  for (int64_t grp = 0; grp < groups; ++grp) {
    const Half* next = grp + 1 < groups ? keys + (grp + 1) * group_stride : nullptr;
    QuantizeKeyGroup<kBits>(l, keys + grp * group_stride, token_stride, next,
                            codes + grp * group_code_bytes, scale + grp * row, zero + grp * row);
  }
}

template void QuantizeKeys<1>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                              Half*);
template void QuantizeKeys<2>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                              Half*);
template void QuantizeKeys<4>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                              Half*);
template void QuantizeKeys<8>(const KiviLayout&, const Half*, int64_t, int64_t, uint8_t*, Half*,
                              Half*);

}  // namespace kvt::kernels::internal::avx512
