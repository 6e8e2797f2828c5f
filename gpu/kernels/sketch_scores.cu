#include "gpu/kernels/sketch_scores.cuh"

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

// Grid (ceil(n / 256), kv_heads); one thread per token. Selected channels and their query weights
// are staged in shared memory (channels <= head_dim <= 1024).
__global__ void SketchScoresKernel(int kvh, int d, int bits, int64_t group, int64_t group_bytes,
                                   const uint8_t* codes, const Half* scale, const Half* zero, const float* qhat,
                                   const int32_t* selected, int channels, int64_t begin, int64_t n, float* scores,
                                   int64_t score_stride) {
  __shared__ int sel_s[1024];
  __shared__ float q_s[1024];
  const int h = blockIdx.y;
  for (int i = threadIdx.x; i < channels; i += blockDim.x) {
    int c = selected[static_cast<int64_t>(h) * channels + i];
    c = c < 0 ? 0 : (c >= d ? d - 1 : c);
    sel_s[i] = c;
    q_s[i] = qhat[static_cast<int64_t>(h) * d + c];
  }
  __syncthreads();
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const int64_t t = begin + j, g = t / group, bit = (t - g * group) * bits;
  const uint32_t mask = (1u << bits) - 1u;
  float acc = 0.0f;
  for (int i = 0; i < channels; ++i) {
    const int64_t p = (g * kvh + h) * d + sel_s[i];
    const uint32_t code = (codes[p * group_bytes + (bit >> 3)] >> (bit & 7)) & mask;
    acc = fmaf(q_s[i], fmaf(static_cast<float>(code), internal::Ld(scale + p), internal::Ld(zero + p)), acc);
  }
  scores[h * score_stride + j] = acc;
}

}  // namespace

Status SketchScoresCuda(const kernels::KiviLayout& layout, const uint8_t* codes, const kernels::Half* scale,
                        const kernels::Half* zero, int64_t groups, const float* qhat, const int32_t* selected,
                        int channels, int64_t begin, int64_t n, float* scores, int64_t score_stride,
                        cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(layout.Validate());
  const int kvh = layout.shape.kv_heads, d = layout.shape.head_dim;
  if (groups < 0 || begin < 0 || n < 0 || begin + n > groups * layout.key_group) {
    return InvalidArgument("sketch scores cuda: tokens outside the quantized groups");
  }
  if (channels <= 0 || channels > d || score_stride < n) return InvalidArgument("sketch scores cuda: bad sizes");
  if (n == 0) return Status::Ok();
  if (!codes || !scale || !zero || !qhat || !selected || !scores) {
    return InvalidArgument("sketch scores cuda: null buffer");
  }
  const dim3 grid(static_cast<unsigned>(internal::CeilDiv(n, 256)), kvh);
  SketchScoresKernel<<<grid, 256, 0, stream>>>(kvh, d, layout.bits, layout.key_group, layout.KeyGroupCodeBytes() / d,
                                               codes, scale, zero, qhat, selected, channels, begin, n, scores,
                                               score_stride);
  return LaunchStatus("SketchScoresKernel");
}

}  // namespace kvt::gpu
