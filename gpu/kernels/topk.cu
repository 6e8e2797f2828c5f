#include "gpu/kernels/topk.cuh"

#include <cub/block/block_scan.cuh>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/radix_select.cuh"

namespace kvt::gpu {
namespace {

constexpr int kThreads = 1024;

__global__ void TopKKernel(const float* values, int64_t n, int64_t stride, int64_t k, int32_t* indices) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const float* v = values + static_cast<int64_t>(blockIdx.x) * stride;
  int32_t* out = indices + static_cast<int64_t>(blockIdx.x) * k;
  int64_t greater = 0;
  const uint32_t threshold =
      internal::RadixSelect([v](int64_t i) { return internal::OrderKey(v[i]); }, n, k, &greater);
  const int64_t ties_needed = k - greater;
  int64_t base_out = 0, base_tie = 0;
  for (int64_t start = 0; start < n; start += kThreads) {
    const int64_t i = start + threadIdx.x;
    const uint32_t key = i < n ? internal::OrderKey(v[i]) : 0u;
    const int gt = i < n && key > threshold;
    const int eq = i < n && key == threshold;
    int tie_rank, tie_total;
    Scan(scan_storage).ExclusiveSum(eq, tie_rank, tie_total);
    __syncthreads();
    const int sel = gt || (eq && base_tie + tie_rank < ties_needed);
    int pos, sel_total;
    Scan(scan_storage).ExclusiveSum(sel, pos, sel_total);
    __syncthreads();
    if (sel) out[base_out + pos] = static_cast<int32_t>(i);
    base_out += sel_total;
    base_tie += tie_total;
  }
}

}  // namespace

Status TopKCuda(const float* values, int64_t rows, int64_t n, int64_t row_stride, int64_t k,
                int32_t* indices, cudaStream_t stream) {
  if (rows < 0 || n < 0 || k < 0 || k > n) return InvalidArgument("topk cuda: need 0 <= k <= n");
  if (n > INT32_MAX) return InvalidArgument("topk cuda: row longer than int32 indices allow");
  if (rows == 0 || k == 0) return Status::Ok();
  if (!values || !indices) return InvalidArgument("topk cuda: null buffer");
  if (row_stride < n) return InvalidArgument("topk cuda: row_stride < n");
  if (rows > INT32_MAX) return InvalidArgument("topk cuda: too many rows");
  TopKKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(values, n, row_stride, k, indices);
  return LaunchStatus("TopKKernel");
}

}  // namespace kvt::gpu
