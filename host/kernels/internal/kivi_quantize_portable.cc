// The portable path of kivi_quantize_paths.h: plain C++ (any x86-64, or anything else), the
// rounding of kivi_layout.h spelled out with the portable fp16 conversions of half.h. Slow; it is
// what a CPU without AVX2 runs, and a third opinion in the tests.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/kernels/internal/kivi_quantize_paths.h"

namespace kvt::kernels::internal {
namespace {

struct Params {
  float scale, zero, inv;
};

Params MakeParams(float mn, float mx, int levels) {
  Params p;
  p.scale = RoundToHalf((mx - mn) / static_cast<float>(levels));
  p.zero = RoundToHalf(mn);
  p.inv = p.scale > 0.0f ? 1.0f / p.scale : 0.0f;
  return p;
}

uint32_t Code(float x, const Params& p, int levels) {
  const float c = std::nearbyint((x - p.zero) * p.inv);
  // Written as the vector paths clamp (max(c, 0) yields 0 for NaN, then min with levels).
  const float lo = c > 0.0f ? c : 0.0f;
  return static_cast<uint32_t>(lo < static_cast<float>(levels) ? lo : static_cast<float>(levels));
}

void PutCode(uint8_t* stream, int64_t i, int bits, uint32_t code) {
  const int64_t bit = i * bits;
  stream[bit / 8] = static_cast<uint8_t>(stream[bit / 8] | (code << (bit % 8)));
}
uint32_t GetCode(const uint8_t* stream, int64_t i, int bits) {
  const int64_t bit = i * bits;
  return (stream[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

void QuantizeKeys(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                  uint8_t* codes, Half* scale, Half* zero) {
  // Per group, the [kv_heads][head_dim] channels are one run: codes [channel][group bits].
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int g = l.key_group;
  const int64_t channel_bytes = static_cast<int64_t>(g) * l.bits / 8;
  for (int64_t grp = 0; grp < groups; ++grp) {
    const Half* base = keys + grp * g * token_stride;
    uint8_t* out = codes + grp * row * channel_bytes;
    std::memset(out, 0, static_cast<size_t>(row * channel_bytes));
    for (int64_t c = 0; c < row; ++c) {
      float mn = INFINITY, mx = -INFINITY;
      for (int j = 0; j < g; ++j) {
        const float x = HalfToFloat(base[j * token_stride + c]);
        mn = std::min(mn, x);
        mx = std::max(mx, x);
      }
      const Params p = MakeParams(mn, mx, l.levels());
      scale[grp * row + c] = FloatToHalf(p.scale);
      zero[grp * row + c] = FloatToHalf(p.zero);
      for (int j = 0; j < g; ++j) {
        PutCode(out + c * channel_bytes, j, l.bits, Code(HalfToFloat(base[j * token_stride + c]), p, l.levels()));
      }
    }
  }
}

void QuantizeValues(const KiviLayout& l, const Half* values, int64_t token_stride, int64_t tokens,
                    uint8_t* codes, Half* scale, Half* zero) {
  const int h = l.shape.kv_heads, d = l.shape.head_dim, vg = l.value_group;
  for (int64_t i = 0; i < tokens * h; ++i) {
    const Half* x = values + (i / h) * token_stride + (i % h) * d;
    uint8_t* out = codes + i * l.ValueTokenCodeBytes();
    std::memset(out, 0, static_cast<size_t>(l.ValueTokenCodeBytes()));
    for (int grp = 0; grp < l.ValueGroups(); ++grp) {
      float mn = INFINITY, mx = -INFINITY;
      for (int c = grp * vg; c < (grp + 1) * vg; ++c) {
        mn = std::min(mn, HalfToFloat(x[c]));
        mx = std::max(mx, HalfToFloat(x[c]));
      }
      const Params p = MakeParams(mn, mx, l.levels());
      scale[i * l.ValueGroups() + grp] = FloatToHalf(p.scale);
      zero[i * l.ValueGroups() + grp] = FloatToHalf(p.zero);
      for (int c = grp * vg; c < (grp + 1) * vg; ++c) PutCode(out, c, l.bits, Code(HalfToFloat(x[c]), p, l.levels()));
    }
  }
}

// x' = fma(code, scale, zero), as the vector paths and the CUDA twin compute it.
void DequantizeKeys(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                    int64_t groups, float* keys, bool /*stream*/) {
  const int64_t row = static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim;
  const int g = l.key_group;
  const int64_t channel_bytes = static_cast<int64_t>(g) * l.bits / 8;
  for (int64_t grp = 0; grp < groups; ++grp) {
    for (int64_t c = 0; c < row; ++c) {
      const float s = HalfToFloat(scale[grp * row + c]), z = HalfToFloat(zero[grp * row + c]);
      const uint8_t* stream = codes + (grp * row + c) * channel_bytes;
      for (int j = 0; j < g; ++j) {
        keys[(grp * g + j) * row + c] = std::fma(static_cast<float>(GetCode(stream, j, l.bits)), s, z);
      }
    }
  }
}

void DequantizeValues(const KiviLayout& l, const uint8_t* codes, const Half* scale, const Half* zero,
                      int64_t tokens, float* values, bool /*stream*/) {
  const int d = l.shape.head_dim;
  for (int64_t i = 0; i < tokens * l.shape.kv_heads; ++i) {
    const uint8_t* stream = codes + i * l.ValueTokenCodeBytes();
    for (int c = 0; c < d; ++c) {
      const int64_t p = i * l.ValueGroups() + c / l.value_group;
      values[i * d + c] = std::fma(static_cast<float>(GetCode(stream, c, l.bits)), HalfToFloat(scale[p]),
                                   HalfToFloat(zero[p]));
    }
  }
}

}  // namespace

const KiviQuantizePath& KiviQuantizePortable() {
  static const KiviQuantizePath path{QuantizeKeys, QuantizeValues, DequantizeKeys, DequantizeValues};
  return path;
}

}  // namespace kvt::kernels::internal
