#include "gpu/kernels/convert.cuh"

#include <algorithm>

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

__global__ void ToHalfKernel(const float* src, Half* dst, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = internal::ToHalf(src[i]);
  }
}

}  // namespace

Status ConvertToHalfCuda(const float* src, kernels::Half* dst, int64_t n, cudaStream_t stream) {
  if (n < 0) return InvalidArgument("convert to half cuda: negative count");
  if (n == 0) return Status::Ok();
  if (!src || !dst) return InvalidArgument("convert to half cuda: null buffer");
  const int64_t blocks = std::min<int64_t>(internal::CeilDiv(n, 256), 4096);  // grid-stride past that
  ToHalfKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(src, dst, n);
  return LaunchStatus("ToHalfKernel");
}

}  // namespace kvt::gpu
