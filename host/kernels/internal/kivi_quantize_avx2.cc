// The AVX2 + FMA + F16C path of kivi_quantize_paths.h (compiled with those flags only; chosen at
// run time by kivi_quantize.cc). Keys one (group, KV head) at a time, 8 channels per vector.
#include <algorithm>
#include <cstring>

#include "host/kernels/internal/kivi_quantize_paths.h"
#include "host/kernels/internal/simd.h"

namespace kvt::kernels::internal {
namespace {

// One key group of one KV head: 8 channels at a time; per channel, codes of the group's tokens are
// gathered into 32-bit words (32 / bits tokens each) and stored channel-major.
template <int kBits>
void QuantizeKeyGroupHead(const KiviLayout& l, const Half* keys, int64_t token_stride,
                          uint8_t* codes, Half* scale, Half* zero) {
  const int d = l.shape.head_dim;
  const int g = l.key_group;
  const int64_t channel_bytes = static_cast<int64_t>(g) * kBits / 8;
  constexpr int kPerWord = 32 / kBits;
  const __m256 levels = _mm256_set1_ps(static_cast<float>(l.levels()));
  for (int c = 0; c < d; c += 8) {
    __m256 mn = _mm256_set1_ps(INFINITY), mx = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < g; ++j) {
      const __m256 x = Load8(keys + j * token_stride + c);
      mn = _mm256_min_ps(mn, x);
      mx = _mm256_max_ps(mx, x);
    }
    const QuantParams8 p = internal::MakeQuantParams8(mn, mx, static_cast<float>(l.levels()));
    internal::Store8(scale + c, p.scale);
    internal::Store8(zero + c, p.zero);
    for (int j0 = 0; j0 < g; j0 += kPerWord) {
      __m256i word = _mm256_setzero_si256();
      const int n = std::min(kPerWord, g - j0);
      for (int j = 0; j < n; ++j) {
        const __m256i q = internal::QuantizeLanes(Load8(keys + (j0 + j) * token_stride + c), p, levels);
        word = _mm256_or_si256(word, _mm256_sll_epi32(q, _mm_cvtsi32_si128(j * kBits)));
      }
      alignas(32) uint32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), word);
      const int64_t byte0 = static_cast<int64_t>(j0) * kBits / 8;
      const size_t nbytes = static_cast<size_t>(n) * kBits / 8;
      for (int k = 0; k < 8; ++k) std::memcpy(codes + (c + k) * channel_bytes + byte0, &lanes[k], nbytes);
    }
  }
}

template <int kBits>
void QuantizeValueRowHead(const KiviLayout& l, const Half* row, uint8_t* codes, Half* scale,
                          Half* zero) {
  const int vg = l.value_group;
  const __m256 levels = _mm256_set1_ps(static_cast<float>(l.levels()));
  for (int grp = 0; grp < l.ValueGroups(); ++grp) {
    const Half* x = row + grp * vg;
    __m256 mn = Load8(x), mx = mn;
    for (int c = 8; c < vg; c += 8) {
      const __m256 v = Load8(x + c);
      mn = _mm256_min_ps(mn, v);
      mx = _mm256_max_ps(mx, v);
    }
    const QuantParams8 p = internal::MakeQuantParams8(
        _mm256_set1_ps(internal::HorizontalMin(mn)), _mm256_set1_ps(internal::HorizontalMax(mx)),
        static_cast<float>(l.levels()));
    scale[grp] = Half{_cvtss_sh(_mm256_cvtss_f32(p.scale), _MM_FROUND_TO_NEAREST_INT)};
    zero[grp] = Half{_cvtss_sh(_mm256_cvtss_f32(p.zero), _MM_FROUND_TO_NEAREST_INT)};
    for (int c = 0; c < vg; c += 8) {
      internal::Store8Codes<kBits>(codes, grp * vg + c, internal::QuantizeLanes(Load8(x + c), p, levels));
    }
  }
}

template <int kBits>
void DequantizeKeyGroupHead(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                            const Half* zero, float* out, int64_t row_stride) {
  const int d = l.shape.head_dim;
  const int g = l.key_group;
  const int64_t channel_bytes = static_cast<int64_t>(g) * kBits / 8;
  for (int c = 0; c < d; c += 8) {
    for (int j = 0; j < g; j += 8) {
      __m256 tile[8];
      for (int k = 0; k < 8; ++k) {
        const __m256 q = _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(codes + (c + k) * channel_bytes, j));
        tile[k] = _mm256_fmadd_ps(q, _mm256_set1_ps(internal::ToFloat(scale[c + k])),
                                  _mm256_set1_ps(internal::ToFloat(zero[c + k])));
      }
      internal::Transpose8x8(tile);
      for (int k = 0; k < 8; ++k) _mm256_storeu_ps(out + (j + k) * row_stride + c, tile[k]);
    }
  }
}

template <int kBits>
void DequantizeValueRowHead(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                            const Half* zero, float* out) {
  for (int c = 0; c < l.shape.head_dim; c += 8) {
    const int grp = c / l.value_group;
    const __m256 q = _mm256_cvtepi32_ps(internal::Load8Codes<kBits>(codes, c));
    _mm256_storeu_ps(out + c, _mm256_fmadd_ps(q, _mm256_set1_ps(internal::ToFloat(scale[grp])),
                                              _mm256_set1_ps(internal::ToFloat(zero[grp]))));
  }
}

template <int kBits>
void QuantizeKeys(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                  uint8_t* codes, Half* scale, Half* zero) {
  const int h = l.shape.kv_heads;
  for (int64_t i = 0; i < groups * h; ++i) {
    const int64_t grp = i / h, head = i % h;
    QuantizeKeyGroupHead<kBits>(l, keys + grp * l.key_group * token_stride + head * l.shape.head_dim,
                                token_stride, codes + i * l.KeyGroupCodeBytes(),
                                scale + i * l.KeyGroupParams(), zero + i * l.KeyGroupParams());
  }
}

template <int kBits>
void QuantizeValues(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t tokens,
                    uint8_t* codes, Half* scale, Half* zero) {
  const int h = l.shape.kv_heads;
  for (int64_t i = 0; i < tokens * h; ++i) {
    const int64_t t = i / h, head = i % h;
    QuantizeValueRowHead<kBits>(l, values + t * token_stride + head * l.shape.head_dim,
                                codes + i * l.ValueTokenCodeBytes(), scale + i * l.ValueGroups(),
                                zero + i * l.ValueGroups());
  }
}

template <int kBits>
void DequantizeKeys(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                    int64_t groups, float* keys, bool /*stream*/) {
  const int h = l.shape.kv_heads;
  const int64_t row = static_cast<int64_t>(h) * l.shape.head_dim;
  for (int64_t i = 0; i < groups * h; ++i) {
    const int64_t grp = i / h, head = i % h;
    DequantizeKeyGroupHead<kBits>(l, codes + i * l.KeyGroupCodeBytes(), scale + i * l.KeyGroupParams(),
                                  zero + i * l.KeyGroupParams(),
                                  keys + grp * l.key_group * row + head * l.shape.head_dim, row);
  }
}

template <int kBits>
void DequantizeValues(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                      int64_t tokens, float* values, bool /*stream*/) {
  for (int64_t i = 0; i < tokens * l.shape.kv_heads; ++i) {
    DequantizeValueRowHead<kBits>(l, codes + i * l.ValueTokenCodeBytes(), scale + i * l.ValueGroups(),
                                  zero + i * l.ValueGroups(), values + i * l.shape.head_dim);
  }
}

}  // namespace

const KiviQuantizePath& KiviQuantizeAvx2() {
  static const KiviQuantizePath path =
      KVT_KIVI_QUANTIZE_PATH(QuantizeKeys, QuantizeValues, DequantizeKeys, DequantizeValues);
  return path;
}

}  // namespace kvt::kernels::internal
