// KiviLayout — how KIVI-style asymmetric quantization packs one layer's keys and values
// (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache", Sec. 3.2-3.3).
// Shared by the CPU kernels (host/kernels/kivi_*.h) and their CUDA twins (gpu/kernels/kivi_*.cuh).
//
// Quantization of a group x_1..x_n (asymmetric, round to nearest even):
//   scale = Half((max - min) / (2^bits - 1)),  zero = Half(min)
//   code  = clamp(rint((x - zero) * (1 / scale)), 0, 2^bits - 1)     (code = 0 when scale == 0)
//   x'    = code * scale + zero
// so |x - x'| <= scale/2 + |min - zero| + (2^bits - 1) * |scale_exact - scale| (tests check this).
//
// Keys: per channel, over groups of `key_group` tokens (keys have outlier channels).
//   key codes  [groups][kv_heads][head_dim][key_group * bits / 8]  (bytes; channel-major, the
//              codes of one channel over the group's tokens form a little-endian bit stream,
//              token j at bit j * bits)
//   key scale  [groups][kv_heads][head_dim]  Half;  key zero: same
// Values: per token, over groups of `value_group` channels.
//   value codes [tokens][kv_heads][head_dim * bits / 8]  (channel c at bit c * bits)
//   value scale [tokens][kv_heads][head_dim / value_group]  Half;  value zero: same
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "host/kernels/attention_shape.h"

namespace kvt::kernels {

struct KiviLayout {
  AttentionShape shape;
  int bits = 2;          // 1, 2, 4 or 8
  int key_group = 32;    // tokens per key scale/zero; a multiple of 8
  int value_group = 32;  // channels per value scale/zero; a multiple of 8 dividing head_dim

  constexpr int levels() const { return (1 << bits) - 1; }
  constexpr int64_t KeyGroupCodeBytes() const {  // one group, one KV head
    return static_cast<int64_t>(shape.head_dim) * key_group * bits / 8;
  }
  constexpr int64_t KeyGroupParams() const { return shape.head_dim; }  // scales (or zeros) per group, head
  constexpr int64_t ValueTokenCodeBytes() const { return static_cast<int64_t>(shape.head_dim) * bits / 8; }
  constexpr int ValueGroups() const { return shape.head_dim / value_group; }  // per token, head

  Status Validate() const {
    Status s = shape.Validate();
    if (!s.ok()) return s;
    if (bits != 1 && bits != 2 && bits != 4 && bits != 8) {
      return InvalidArgument("kivi: bits must be 1, 2, 4 or 8, got " + std::to_string(bits));
    }
    if (key_group <= 0 || key_group % 8 != 0 || key_group > 4096) {
      return InvalidArgument("kivi: key_group must be a positive multiple of 8 (<= 4096), got " +
                             std::to_string(key_group));
    }
    if (value_group <= 0 || value_group % 8 != 0 || shape.head_dim % value_group != 0) {
      return InvalidArgument("kivi: value_group must be a multiple of 8 dividing head_dim, got " +
                             std::to_string(value_group));
    }
    return Status::Ok();
  }
};

}  // namespace kvt::kernels
