#include "gpu/kernels/channel_select.cuh"

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

constexpr int kTokensPerBlock = 1024;

// Grid (ceil(row / 256), ceil(tokens / kTokensPerBlock)); |x| >= 0, so float order is int order.
__global__ void AbsMaxKernel(const Half* keys, int64_t tokens, int64_t stride, int64_t row, float* absmax) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= row) return;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kTokensPerBlock;
  const int64_t t1 = t0 + kTokensPerBlock < tokens ? t0 + kTokensPerBlock : tokens;
  float m = 0.0f;
  for (int64_t t = t0; t < t1; ++t) m = fmaxf(m, fabsf(internal::Ld(keys + t * stride + e)));
  atomicMax(reinterpret_cast<int*>(absmax + e), __float_as_int(m));
}

// One block per KV head, one thread per channel (head_dim <= 1024).
__global__ void TopChannelsKernel(const float* query, const float* absmax, int g, int d, int channels,
                                  float* qhat, int32_t* selected) {
  __shared__ uint32_t keys[1024];
  __shared__ int chosen[1024];
  const int h = blockIdx.x, c = threadIdx.x;
  if (c < d) {
    float s = 0.0f;
    for (int j = 0; j < g; ++j) s += query[(static_cast<int64_t>(h) * g + j) * d + c];
    const float q = s / static_cast<float>(g);
    qhat[static_cast<int64_t>(h) * d + c] = q;
    keys[c] = internal::OrderKey(fabsf(q) * absmax[static_cast<int64_t>(h) * d + c]);
  }
  __syncthreads();
  if (c < d) {
    int rank = 0;
    for (int o = 0; o < d; ++o) rank += keys[o] > keys[c] || (keys[o] == keys[c] && o < c);
    chosen[c] = rank < channels;
  }
  __syncthreads();
  if (c < d && chosen[c]) {
    int pos = 0;
    for (int o = 0; o < c; ++o) pos += chosen[o];
    selected[static_cast<int64_t>(h) * channels + pos] = c;
  }
}

}  // namespace

Status KeyChannelAbsMaxCuda(const kernels::AttentionShape& shape, const kernels::Half* keys, int64_t tokens,
                            int64_t token_stride, float* absmax, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (tokens < 0) return InvalidArgument("channel absmax cuda: negative tokens");
  if (tokens == 0) return Status::Ok();
  if (!keys || !absmax) return InvalidArgument("channel absmax cuda: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("channel absmax cuda: token_stride smaller than a row");
  const dim3 grid(static_cast<unsigned>(internal::CeilDiv(row, 256)),
                  static_cast<unsigned>(internal::CeilDiv(tokens, kTokensPerBlock)));
  AbsMaxKernel<<<grid, 256, 0, stream>>>(keys, tokens, token_stride, row, absmax);
  return LaunchStatus("AbsMaxKernel");
}

Status TopChannelsCuda(const kernels::AttentionShape& shape, const float* query, const float* absmax,
                       int channels, float* qhat, int32_t* selected, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (channels <= 0 || channels > shape.head_dim) return InvalidArgument("top channels cuda: bad count");
  if (!query || !absmax || !qhat || !selected) return InvalidArgument("top channels cuda: null buffer");
  const int threads = ((shape.head_dim + 31) / 32) * 32;
  TopChannelsKernel<<<shape.kv_heads, threads, 0, stream>>>(query, absmax, shape.group(), shape.head_dim,
                                                           channels, qhat, selected);
  return LaunchStatus("TopChannelsKernel");
}

}  // namespace kvt::gpu
