// KIVI quantization and its inverse (CPU). Layouts and the exact rounding rule: kivi_layout.h.
// CUDA twin: gpu/kernels/kivi_quantize.cuh (same functions, device pointers, a stream).
//
// All functions are pure: they read their inputs, write only their outputs, allocate nothing and
// may run in parallel (oneTBB) over groups or tokens. They block until done.
//
// Every vector path (AVX2, AVX-512) writes the same bytes as the portable one for finite inputs
// and infinities, rounding ties included (tests/unit/kernels/kivi_quantize_paths_test.cc). Not for
// NaN (it may win or lose a group's min/max depending on the path) nor for a group whose minimum
// is a zero of either sign (the stored zero point may be +0 on one path and -0 on another): the
// values decoded are equal, their bits may not be.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/half.h"
#include "host/kernels/kivi_layout.h"

namespace kvt::kernels {

// Quantizes `groups` whole key groups.
//   keys   [groups * key_group][kv_heads][head_dim] Half (token rows, `token_stride` elements
//          apart; token_stride >= kv_heads * head_dim)
//   codes  [groups][kv_heads][head_dim][key_group * bits / 8]
//   scale, zero [groups][kv_heads][head_dim]
Status KiviQuantizeKeys(const KiviLayout& layout, const Half* keys, int64_t token_stride,
                        int64_t groups, uint8_t* codes, Half* scale, Half* zero);

// Quantizes `tokens` value rows.
//   values [tokens][kv_heads][head_dim] Half (rows `token_stride` elements apart)
//   codes  [tokens][kv_heads][head_dim * bits / 8]
//   scale, zero [tokens][kv_heads][head_dim / value_group]
Status KiviQuantizeValues(const KiviLayout& layout, const Half* values, int64_t token_stride,
                          int64_t tokens, uint8_t* codes, Half* scale, Half* zero);

// Inverses: write [groups * key_group][kv_heads][head_dim] / [tokens][kv_heads][head_dim] floats.
Status KiviDequantizeKeys(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                          const Half* zero, int64_t groups, float* keys);
Status KiviDequantizeValues(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                            const Half* zero, int64_t tokens, float* values);

}  // namespace kvt::kernels
