#include "gpu/kernels/approx_scores.cuh"

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

// Grid (ceil(tokens / 256), kv_heads); one thread per token. Selected channels and their query
// weights are staged in shared memory (channels <= head_dim <= 1024).
__global__ void ApproxScoresKernel(int d, const float* qhat, const int32_t* selected, int channels,
                                   kernels::StridedKeys k, float* scores, int64_t score_stride) {
  __shared__ int sel_s[1024];
  __shared__ float q_s[1024];
  const int h = blockIdx.y;
  for (int i = threadIdx.x; i < channels; i += blockDim.x) {
    int c = selected[static_cast<int64_t>(h) * channels + i];
    c = c < 0 ? 0 : (c >= d ? d - 1 : c);  // out-of-range channels cannot read out of bounds
    sel_s[i] = c;
    q_s[i] = qhat[static_cast<int64_t>(h) * d + c];
  }
  __syncthreads();
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= k.tokens) return;
  const Half* base = k.keys + h * k.head_stride + t * k.token_stride;
  float acc = 0.0f;
  for (int i = 0; i < channels; ++i) acc = fmaf(q_s[i], internal::Ld(base + sel_s[i] * k.channel_stride), acc);
  scores[h * score_stride + t] = acc;
}

}  // namespace

Status ApproxScoresCuda(int kv_heads, int head_dim, const float* qhat, const int32_t* selected,
                        int channels, const kernels::StridedKeys& keys, float* scores,
                        int64_t score_stride, cudaStream_t stream) {
  if (kv_heads <= 0 || head_dim <= 0 || head_dim > 1024 || channels <= 0 || channels > head_dim ||
      keys.tokens < 0) {
    return InvalidArgument("approx scores cuda: bad sizes");
  }
  if (keys.tokens == 0) return Status::Ok();
  if (!qhat || !selected || !keys.keys || !scores) return InvalidArgument("approx scores cuda: null buffer");
  if (score_stride < keys.tokens) return InvalidArgument("approx scores cuda: score_stride < tokens");
  const dim3 grid(static_cast<unsigned>(internal::CeilDiv(keys.tokens, 256)), kv_heads);
  ApproxScoresKernel<<<grid, 256, 0, stream>>>(head_dim, qhat, selected, channels, keys, scores, score_stride);
  return LaunchStatus("ApproxScoresKernel");
}

}  // namespace kvt::gpu
