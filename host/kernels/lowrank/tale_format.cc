#include "host/kernels/lowrank/tale_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "host/kernels/lowrank/internal/half_bits.h"

namespace kvt::kernels::lowrank {

TaleFormat DefaultTaleFormat(int head_dim, const int (&bits)[kTaleLevels]) {
  TaleFormat f;
  f.head_dim = head_dim;
  for (int l = 0; l < kTaleLevels; ++l) {
    f.ranks[l] = std::max(1, head_dim >> l);
    f.bits[l] = bits[l];
  }
  return f;
}

StatusOr<TaleLayout> MakeTaleLayout(const TaleFormat& format) {
  const int d = format.head_dim;
  if (d < 1 || d > kTaleMaxHeadDim) {
    return InvalidArgument("TALE: head_dim must be in [1, " + std::to_string(kTaleMaxHeadDim) +
                           "], got " + std::to_string(d));
  }
  if (format.ranks[0] != d) return InvalidArgument("TALE: level 0 must be full rank");
  for (int l = 1; l < kTaleLevels; ++l) {
    if (format.ranks[l] > format.ranks[l - 1] || format.ranks[l] < 1) {
      return InvalidArgument("TALE: level ranks must be non-increasing and >= 1");
    }
  }
  for (int s = 0; s < kTaleLevels; ++s) {
    const int b = format.bits[s];
    if (b != 2 && b != 4 && b != 8 && b != 16 && b != 32) {
      return InvalidArgument("TALE: segment bits must be 2, 4, 8, 16 or 32, got " +
                             std::to_string(b));
    }
  }
  TaleLayout layout;
  layout.head_dim = d;
  for (int l = 0; l < kTaleLevels; ++l) {
    TaleLevelLayout& lv = layout.levels[l];
    lv.rank = format.ranks[l];
    lv.num_segments = kTaleLevels - l;
    int scale_bytes = 0;
    for (int s = 0; s < lv.num_segments; ++s) {
      TaleSegment& seg = lv.segments[s];
      seg.begin = s == 0 ? 0 : format.ranks[kTaleLevels - s];
      seg.end = format.ranks[kTaleLevels - 1 - s];
      seg.bits = format.bits[s];
      if (seg.bits < 16 && seg.end > seg.begin) {
        seg.scale_offset = scale_bytes;
        scale_bytes += 2;
      }
    }
    int offset = scale_bytes;
    for (int s = 0; s < lv.num_segments; ++s) {
      TaleSegment& seg = lv.segments[s];
      seg.code_offset = offset;
      offset += ((seg.end - seg.begin) * seg.bits + 7) / 8;
    }
    lv.record_bytes = offset;
  }
  return layout;
}

void TaleEncodeRecord(const TaleLevelLayout& level, const float* coeffs, uint8_t* record) {
  std::memset(record, 0, static_cast<size_t>(level.record_bytes));
  for (int s = 0; s < level.num_segments; ++s) {
    const TaleSegment& seg = level.segments[s];
    const int len = seg.end - seg.begin;
    if (len <= 0) continue;
    const float* c = coeffs + seg.begin;
    uint8_t* codes = record + seg.code_offset;
    if (seg.bits == 32) {
      std::memcpy(codes, c, static_cast<size_t>(len) * 4);
      continue;
    }
    if (seg.bits == 16) {
      for (int i = 0; i < len; ++i) {
        const uint16_t h = internal::FloatToHalfBits(c[i]);
        std::memcpy(codes + 2 * i, &h, 2);
      }
      continue;
    }
    float absmax = 0.0f;
    for (int i = 0; i < len; ++i) absmax = std::max(absmax, std::fabs(c[i]));
    const float off = TaleCodeOffset(seg.bits);
    // The scale is rounded to fp16 first so codes are chosen against the scale actually stored.
    const uint16_t scale_bits = internal::FloatToHalfBits(absmax / off);
    std::memcpy(record + seg.scale_offset, &scale_bits, 2);
    const float scale = internal::HalfBitsToFloat(scale_bits);
    const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    const int max_code = (1 << seg.bits) - 1;
    for (int i = 0; i < len; ++i) {
      int q = static_cast<int>(std::lround(c[i] * inv + off));
      q = std::clamp(q, 0, max_code);
      const int bit = i * seg.bits;
      codes[bit >> 3] |= static_cast<uint8_t>(q << (bit & 7));
    }
  }
}

void TaleDecodeRecord(const TaleLevelLayout& level, int head_dim, const uint8_t* record,
                      float* coeffs) {
  for (int i = 0; i < head_dim; ++i) coeffs[i] = 0.0f;
  for (int s = 0; s < level.num_segments; ++s) {
    const TaleSegment& seg = level.segments[s];
    const int len = seg.end - seg.begin;
    if (len <= 0) continue;
    float* c = coeffs + seg.begin;
    const uint8_t* codes = record + seg.code_offset;
    if (seg.bits == 32) {
      std::memcpy(c, codes, static_cast<size_t>(len) * 4);
      continue;
    }
    if (seg.bits == 16) {
      for (int i = 0; i < len; ++i) {
        uint16_t h;
        std::memcpy(&h, codes + 2 * i, 2);
        c[i] = internal::HalfBitsToFloat(h);
      }
      continue;
    }
    uint16_t scale_bits;
    std::memcpy(&scale_bits, record + seg.scale_offset, 2);
    const float scale = internal::HalfBitsToFloat(scale_bits);
    const float off = TaleCodeOffset(seg.bits);
    const int mask = (1 << seg.bits) - 1;
    for (int i = 0; i < len; ++i) {
      const int bit = i * seg.bits;
      const int q = (codes[bit >> 3] >> (bit & 7)) & mask;
      c[i] = (static_cast<float>(q) - off) * scale;
    }
  }
}

}  // namespace kvt::kernels::lowrank
