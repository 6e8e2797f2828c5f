// The per-ISA bodies of host/kernels/kivi_quantize.h. Each path works on one contiguous range
// (pointers already offset to its first group / token) on the calling thread; kivi_quantize.cc
// validates, splits the work over oneTBB and picks the path (cpu_isa.h). All paths compute the
// exact function of kivi_layout.h, bit for bit.
//
// `stream`: the caller writes a large output it will not read back soon: the dequantizers may use
// non-temporal stores (each path fences its own stores before returning).
#pragma once

#include <cstdint>

#include "host/kernels/half.h"
#include "host/kernels/internal/cpu_isa.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::kernels::internal {

struct KiviQuantizePath {
  void (*quantize_keys)(const KiviLayout& l, const Half* keys, int64_t token_stride, int64_t groups,
                        uint8_t* codes, Half* scale, Half* zero);
  void (*quantize_values)(const KiviLayout& l, const Half* values, int64_t token_stride,
                          int64_t tokens, uint8_t* codes, Half* scale, Half* zero);
  void (*dequantize_keys)(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                          const Half* zero, int64_t groups, float* keys, bool stream);
  void (*dequantize_values)(const KiviLayout& l, const uint8_t* codes, const Half* scale,
                            const Half* zero, int64_t tokens, float* values, bool stream);
};

// How one channel's key codes sit in its stream of G * bits / 8 bytes: 32-bit words (token j at
// bit (j % per_word) * bits of word j / per_word), the last one partial when G * bits % 32 != 0.
struct KeyStreamGeometry {
  explicit KeyStreamGeometry(const KiviLayout& l)
      : channel_bytes(static_cast<int64_t>(l.key_group) * l.bits / 8),
        words((l.key_group * l.bits + 31) / 32),
        full_words(l.key_group * l.bits / 32),
        tail_bytes(static_cast<int>(channel_bytes - 4 * full_words)) {}
  int64_t channel_bytes;
  int words;       // including a partial last one
  int full_words;
  int tail_bytes;  // bytes of the partial last word (0: none)
};

// A KiviQuantizePath from four function templates over the bit width, fn<kBits>(layout, ...).
#define KVT_KIVI_BY_BITS(fn)                  \
  [](const KiviLayout& l, auto... args) {     \
    switch (l.bits) {                         \
      case 1: return fn<1>(l, args...);       \
      case 2: return fn<2>(l, args...);       \
      case 4: return fn<4>(l, args...);       \
      default: return fn<8>(l, args...);      \
    }                                         \
  }
#define KVT_KIVI_QUANTIZE_PATH(quantize_keys, quantize_values, dequantize_keys, dequantize_values)        \
  ::kvt::kernels::internal::KiviQuantizePath {                                                           \
    +[](const KiviLayout& l, const Half* k, int64_t s, int64_t n, uint8_t* c, Half* sc, Half* z) {       \
      KVT_KIVI_BY_BITS(quantize_keys)(l, k, s, n, c, sc, z);                                             \
    },                                                                                                   \
    +[](const KiviLayout& l, const Half* v, int64_t s, int64_t n, uint8_t* c, Half* sc, Half* z) {       \
      KVT_KIVI_BY_BITS(quantize_values)(l, v, s, n, c, sc, z);                                           \
    },                                                                                                   \
    +[](const KiviLayout& l, const uint8_t* c, const Half* sc, const Half* z, int64_t n, float* o,       \
        bool st) { KVT_KIVI_BY_BITS(dequantize_keys)(l, c, sc, z, n, o, st); },                          \
    +[](const KiviLayout& l, const uint8_t* c, const Half* sc, const Half* z, int64_t n, float* o,       \
        bool st) { KVT_KIVI_BY_BITS(dequantize_values)(l, c, sc, z, n, o, st); }                         \
  }

// One per file: kivi_quantize_portable.cc, kivi_quantize_avx2.cc, kivi_quantize_avx512.cc.
const KiviQuantizePath& KiviQuantizePortable();
const KiviQuantizePath& KiviQuantizeAvx2();
const KiviQuantizePath& KiviQuantizeAvx512();

}  // namespace kvt::kernels::internal
