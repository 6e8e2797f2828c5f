// KIVI quantization on an explicit instruction-set path (tests compare the paths; everything else
// uses host/kernels/kivi_quantize.h, which runs on BestCpuIsa()). Same contracts as there; a path
// this CPU cannot run is UNSUPPORTED.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/internal/cpu_isa.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::kernels::internal {

Status KiviQuantizeKeysOn(CpuIsa isa, const KiviLayout& layout, const Half* keys,
                          int64_t token_stride, int64_t groups, uint8_t* codes, Half* scale,
                          Half* zero);
Status KiviQuantizeValuesOn(CpuIsa isa, const KiviLayout& layout, const Half* values,
                            int64_t token_stride, int64_t tokens, uint8_t* codes, Half* scale,
                            Half* zero);
Status KiviDequantizeKeysOn(CpuIsa isa, const KiviLayout& layout, const uint8_t* codes,
                            const Half* scale, const Half* zero, int64_t groups, float* keys);
Status KiviDequantizeValuesOn(CpuIsa isa, const KiviLayout& layout, const uint8_t* codes,
                              const Half* scale, const Half* zero, int64_t tokens, float* values);

}  // namespace kvt::kernels::internal
