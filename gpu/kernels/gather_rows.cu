#include "gpu/kernels/gather_rows.cuh"

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

// One thread per 16-byte chunk (8 halves) of an output row.
__global__ void GatherKernel(const uint4* src, int64_t src_tokens, int64_t stride_chunks, int kvh,
                             int row_chunks, const int32_t* indices, int64_t k, uint4* dst) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(kvh) * k * row_chunks) return;
  const int64_t sel = i / row_chunks;  // h * k + r
  const int c = static_cast<int>(i % row_chunks);
  const int64_t h = sel / k;
  const int32_t t = indices[sel];
  dst[i] = (t >= 0 && t < src_tokens) ? src[t * stride_chunks + h * row_chunks + c] : make_uint4(0, 0, 0, 0);
}

}  // namespace

Status GatherRowsCuda(const kernels::Half* src, int64_t src_tokens, int64_t token_stride, int kv_heads,
                      int head_dim, const int32_t* indices, int64_t k, kernels::Half* dst,
                      cudaStream_t stream) {
  if (kv_heads <= 0 || head_dim <= 0 || k < 0 || src_tokens < 0) return InvalidArgument("gather cuda: bad sizes");
  if (head_dim % 8 != 0 || token_stride % 8 != 0) {
    return InvalidArgument("gather cuda: head_dim and token_stride must be multiples of 8");
  }
  if (token_stride < static_cast<int64_t>(kv_heads) * head_dim) {
    return InvalidArgument("gather cuda: token_stride smaller than a token row");
  }
  if (k == 0) return Status::Ok();
  if (!src || !indices || !dst) return InvalidArgument("gather cuda: null buffer");
  const int row_chunks = head_dim / 8;
  const int64_t n = static_cast<int64_t>(kv_heads) * k * row_chunks;
  GatherKernel<<<static_cast<unsigned>(internal::CeilDiv(n, 256)), 256, 0, stream>>>(
      reinterpret_cast<const uint4*>(src), src_tokens, token_stride / 8, kv_heads, row_chunks, indices, k,
      reinterpret_cast<uint4*>(dst));
  return LaunchStatus("GatherKernel");
}

}  // namespace kvt::gpu
