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

// One per file: kivi_quantize_portable.cc, kivi_quantize_avx2.cc, kivi_quantize_avx512.cc.
const KiviQuantizePath& KiviQuantizePortable();
const KiviQuantizePath& KiviQuantizeAvx2();
const KiviQuantizePath& KiviQuantizeAvx512();

}  // namespace kvt::kernels::internal
