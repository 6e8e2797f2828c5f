#include "host/kernels/kivi_quantize.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

#include "common/status_or.h"
#include "host/kernels/internal/kivi_quantize_isa.h"
#include "host/kernels/internal/kivi_quantize_paths.h"

namespace kvt::kernels {
namespace internal {
namespace {

// Work below this many input/output bytes runs on the calling thread (a residual-window flush of
// one value token must not pay for a parallel_for); above, chunks of about this size go to oneTBB.
constexpr int64_t kChunkBytes = 256 << 10;
// Dequantized outputs at least this large are written with non-temporal stores: they exceed the
// private caches many times over, and streaming them saves the read-for-ownership of every line.
constexpr int64_t kStreamBytes = 8 << 20;

Status CheckCommon(const KiviLayout& layout, int64_t count, const void* a, const void* b,
                   const void* c, const void* d) {
  Status s = layout.Validate();
  if (!s.ok()) return s;
  if (count < 0) return InvalidArgument("kivi quantize: negative count");
  if (count > 0 && (!a || !b || !c || !d)) return InvalidArgument("kivi quantize: null buffer");
  if (layout.key_group > 1024) return InvalidArgument("kivi: key_group above 1024");
  return Status::Ok();
}

Status CheckStride(const KiviLayout& layout, int64_t token_stride, const char* what) {
  if (token_stride < static_cast<int64_t>(layout.shape.kv_heads) * layout.shape.head_dim) {
    return InvalidArgument(std::string("kivi quantize ") + what + ": token_stride smaller than a token row");
  }
  return Status::Ok();
}

StatusOr<const KiviQuantizePath*> PathFor(CpuIsa isa) {
  if (!CpuSupports(isa)) return Unsupported(std::string("kivi: this CPU cannot run the ") + CpuIsaName(isa) + " path");
  switch (isa) {
    case CpuIsa::kAvx512: return &KiviQuantizeAvx512();
    case CpuIsa::kAvx2: return &KiviQuantizeAvx2();
    case CpuIsa::kPortable: break;
  }
  return &KiviQuantizePortable();
}

// Runs fn(first, count) over [0, n) items of `item_bytes` each, in chunks of about kChunkBytes.
template <typename Fn>
void ForChunks(int64_t n, int64_t item_bytes, Fn fn) {
  const int64_t grain = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, item_bytes));
  if (n <= grain) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end() - r.begin()); });
}

int64_t RowElements(const KiviLayout& l) { return static_cast<int64_t>(l.shape.kv_heads) * l.shape.head_dim; }

}  // namespace

Status KiviQuantizeKeysOn(CpuIsa isa, const KiviLayout& layout, const Half* keys, int64_t token_stride,
                          int64_t groups, uint8_t* codes, Half* scale, Half* zero) {
  KVT_RETURN_IF_ERROR(CheckCommon(layout, groups, keys, codes, scale, zero));
  KVT_RETURN_IF_ERROR(CheckStride(layout, token_stride, "keys"));
  KVT_ASSIGN_OR_RETURN(const KiviQuantizePath* path, PathFor(isa));
  const int64_t row = RowElements(layout);
  const int64_t code_bytes = layout.shape.kv_heads * layout.KeyGroupCodeBytes();
  ForChunks(groups, 2 * row * layout.key_group, [&](int64_t g0, int64_t n) {
    path->quantize_keys(layout, keys + g0 * layout.key_group * token_stride, token_stride, n,
                        codes + g0 * code_bytes, scale + g0 * row, zero + g0 * row);
  });
  return Status::Ok();
}

Status KiviQuantizeValuesOn(CpuIsa isa, const KiviLayout& layout, const Half* values, int64_t token_stride,
                            int64_t tokens, uint8_t* codes, Half* scale, Half* zero) {
  KVT_RETURN_IF_ERROR(CheckCommon(layout, tokens, values, codes, scale, zero));
  KVT_RETURN_IF_ERROR(CheckStride(layout, token_stride, "values"));
  KVT_ASSIGN_OR_RETURN(const KiviQuantizePath* path, PathFor(isa));
  const int h = layout.shape.kv_heads;
  ForChunks(tokens, 2 * RowElements(layout), [&](int64_t t0, int64_t n) {
    path->quantize_values(layout, values + t0 * token_stride, token_stride, n,
                          codes + t0 * h * layout.ValueTokenCodeBytes(), scale + t0 * h * layout.ValueGroups(),
                          zero + t0 * h * layout.ValueGroups());
  });
  return Status::Ok();
}

Status KiviDequantizeKeysOn(CpuIsa isa, const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                            const Half* zero, int64_t groups, float* keys) {
  KVT_RETURN_IF_ERROR(CheckCommon(layout, groups, codes, scale, zero, keys));
  KVT_ASSIGN_OR_RETURN(const KiviQuantizePath* path, PathFor(isa));
  const int64_t row = RowElements(layout);
  const int64_t code_bytes = layout.shape.kv_heads * layout.KeyGroupCodeBytes();
  const int64_t group_out = row * layout.key_group * static_cast<int64_t>(sizeof(float));
  const bool stream = groups * group_out >= kStreamBytes;
  ForChunks(groups, group_out, [&](int64_t g0, int64_t n) {
    path->dequantize_keys(layout, codes + g0 * code_bytes, scale + g0 * row, zero + g0 * row, n,
                          keys + g0 * layout.key_group * row, stream);
  });
  return Status::Ok();
}

Status KiviDequantizeValuesOn(CpuIsa isa, const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                              const Half* zero, int64_t tokens, float* values) {
  KVT_RETURN_IF_ERROR(CheckCommon(layout, tokens, codes, scale, zero, values));
  KVT_ASSIGN_OR_RETURN(const KiviQuantizePath* path, PathFor(isa));
  const int h = layout.shape.kv_heads;
  const int64_t row = RowElements(layout);
  const int64_t token_out = row * static_cast<int64_t>(sizeof(float));
  const bool stream = tokens * token_out >= kStreamBytes;
  ForChunks(tokens, token_out, [&](int64_t t0, int64_t n) {
    path->dequantize_values(layout, codes + t0 * h * layout.ValueTokenCodeBytes(),
                            scale + t0 * h * layout.ValueGroups(), zero + t0 * h * layout.ValueGroups(), n,
                            values + t0 * row, stream);
  });
  return Status::Ok();
}

}  // namespace internal

Status KiviQuantizeKeys(const KiviLayout& layout, const Half* keys, int64_t token_stride,
                        int64_t groups, uint8_t* codes, Half* scale, Half* zero) {
  return internal::KiviQuantizeKeysOn(internal::BestCpuIsa(), layout, keys, token_stride, groups, codes, scale,
                                      zero);
}

Status KiviQuantizeValues(const KiviLayout& layout, const Half* values, int64_t token_stride,
                          int64_t tokens, uint8_t* codes, Half* scale, Half* zero) {
  return internal::KiviQuantizeValuesOn(internal::BestCpuIsa(), layout, values, token_stride, tokens, codes,
                                        scale, zero);
}

Status KiviDequantizeKeys(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                          const Half* zero, int64_t groups, float* keys) {
  return internal::KiviDequantizeKeysOn(internal::BestCpuIsa(), layout, codes, scale, zero, groups, keys);
}

Status KiviDequantizeValues(const KiviLayout& layout, const uint8_t* codes, const Half* scale,
                            const Half* zero, int64_t tokens, float* values) {
  return internal::KiviDequantizeValuesOn(internal::BestCpuIsa(), layout, codes, scale, zero, tokens, values);
}

}  // namespace kvt::kernels
