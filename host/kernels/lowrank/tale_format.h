// TALE storage format — how one token's coefficients are laid out at each rank level.
//
// A KV head has an orthonormal basis B [head_dim][head_dim] (column j = j-th basis vector, sorted by
// decreasing energy). A token x is stored as its leading coefficients c = B^T x truncated to the rank
// of its level. Levels (defaults for head_dim d):   level 0: d,  level 1: d/2,  level 2: d/4,  level 3: d/8
// (never below 1). The coefficient axis is cut into kTaleLevels segments at those ranks:
//   segment 0 = [0, r3), segment 1 = [r3, r2), segment 2 = [r2, r1), segment 3 = [r1, r0)
// and a level-L record holds segments 0 .. kTaleLevels-1-L, so leading coefficients are shared by
// every level and only the tail is dropped. Each segment has its own bit width ("multi-level
// quantization": leading coefficients carry most energy and get more bits):
//   bits 2, 4, 8: symmetric mid-rise codes, value = (code - (2^b - 1) / 2) * scale, one fp16 scale per
//                 segment per token (absmax / ((2^b - 1) / 2)); codes packed little-endian within bytes
//                 (element 0 in the low bits)
//   bits 16:      fp16 coefficients, no scale;   bits 32: float32 coefficients, no scale.
// Record = [fp16 scales of the quantized, non-empty segments][codes of segment 0][codes of segment 1]...
// Exact size: TaleLevelLayout::record_bytes; bits per element = record_bytes * 8 / head_dim.
//
// Everything here is plain data (ints), so layouts pass by value to CUDA kernels unchanged.
#pragma once

#include <cstdint>

#include "common/status_or.h"

namespace kvt::kernels::lowrank {

inline constexpr int kTaleLevels = 4;
inline constexpr int kTaleMaxHeadDim = 256;

struct TaleFormat {
  int head_dim = 0;
  int ranks[kTaleLevels] = {0, 0, 0, 0};  // non-increasing, ranks[0] == head_dim, ranks[3] >= 1
  int bits[kTaleLevels] = {8, 8, 4, 4};    // per segment (see above); each in {2, 4, 8, 16, 32}
};

// Default ranks d, d/2, d/4, d/8 (each at least 1) with the given segment bits.
TaleFormat DefaultTaleFormat(int head_dim, const int (&bits)[kTaleLevels]);

struct TaleSegment {
  int begin = 0, end = 0;  // coefficient range [begin, end)
  int bits = 32;
  int scale_offset = -1;   // byte offset of the fp16 scale in the record (-1: no scale)
  int code_offset = 0;     // byte offset of the codes in the record
};

struct TaleLevelLayout {
  int rank = 0;
  int num_segments = 0;    // segments 0 .. num_segments-1 are stored
  int record_bytes = 0;
  TaleSegment segments[kTaleLevels];
};

struct TaleLayout {
  int head_dim = 0;
  TaleLevelLayout levels[kTaleLevels];
};

// INVALID_ARGUMENT for a head_dim outside [1, kTaleMaxHeadDim], ranks not non-increasing from
// head_dim down to >= 1, or an unsupported bit width.
StatusOr<TaleLayout> MakeTaleLayout(const TaleFormat& format);

// Mid-rise offset (2^b - 1) / 2 of a quantized segment (0 for 16 and 32 bits).
inline float TaleCodeOffset(int bits) {
  return bits >= 16 ? 0.0f : 0.5f * static_cast<float>((1 << bits) - 1);
}

// Encodes coefficients [head_dim] (only the first `rank` are read) into one record
// (level.record_bytes bytes). Deterministic; never allocates.
void TaleEncodeRecord(const TaleLevelLayout& level, const float* coeffs, uint8_t* record);

// Decodes a record into coefficients [head_dim]; entries at and beyond the level's rank are 0.
void TaleDecodeRecord(const TaleLevelLayout& level, int head_dim, const uint8_t* record,
                      float* coeffs);

}  // namespace kvt::kernels::lowrank
