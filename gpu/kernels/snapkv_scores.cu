#include "gpu/kernels/snapkv_scores.cuh"

#include "gpu/kernels/internal/obs_logits.cuh"

namespace kvt::gpu {
namespace {

// One block per row: normalized probabilities of the prefix tokens, divided by the group size.
__global__ void ObsSoftmaxKernel(float* logits, int64_t tokens, int64_t prefix, int window, float weight) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  float* s = logits + static_cast<int64_t>(r) * tokens;
  const int64_t len = prefix + r % window + 1;
  float m = -INFINITY;
  for (int64_t t = threadIdx.x; t < len; t += blockDim.x) m = fmaxf(m, s[t]);
  m = internal::BlockMax(m, scratch);
  float sum = 0.0f;
  for (int64_t t = threadIdx.x; t < len; t += blockDim.x) sum += __expf(s[t] - m);
  sum = internal::BlockSum(sum, scratch);
  const float w = weight / sum;
  for (int64_t t = threadIdx.x; t < prefix; t += blockDim.x) s[t] = __expf(s[t] - m) * w;
}

__global__ void SumRowsKernel(const float* p, int rows, int64_t tokens, int64_t prefix, float* raw) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= prefix) return;
  float acc = 0.0f;
  for (int r = 0; r < rows; ++r) acc += p[static_cast<int64_t>(r) * tokens + t];
  raw[t] = acc;
}

__global__ void MaxPoolKernel(const float* raw, int64_t prefix, int half, float* out) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= prefix) return;
  float best = raw[t];
  const int64_t lo = t - half < 0 ? 0 : t - half, hi = t + half < prefix ? t + half : prefix - 1;
  for (int64_t u = lo; u <= hi; ++u) best = fmaxf(best, raw[u]);
  out[t] = best;
}

}  // namespace

size_t SnapKvWorkspaceBytesCuda(const kernels::AttentionShape& shape, int window, int64_t tokens) {
  const size_t padded = internal::ObsRowsPadded(shape, window);
  return sizeof(float) * (padded * shape.head_dim + padded * tokens + tokens);
}

Status SnapKvScoresCuda(const kernels::AttentionShape& shape, const float* obs, int window,
                        const kernels::Half* keys, int64_t tokens, int64_t token_stride, int pool,
                        float* scores, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (window <= 0 || tokens <= window) return InvalidArgument("snapkv cuda: need 0 < window < tokens");
  if (pool <= 0 || pool % 2 == 0) return InvalidArgument("snapkv cuda: pool must be odd and positive");
  if (!obs || !keys || !scores || !workspace) return InvalidArgument("snapkv cuda: null buffer");
  if (token_stride < static_cast<int64_t>(shape.kv_heads) * shape.head_dim) {
    return InvalidArgument("snapkv cuda: token_stride smaller than a row");
  }
  if (workspace_bytes < SnapKvWorkspaceBytesCuda(shape, window, tokens)) {
    return InvalidArgument("snapkv cuda: workspace too small");
  }
  const int padded = internal::ObsRowsPadded(shape, window), rows = shape.group() * window;
  float* qbuf = static_cast<float*>(workspace);
  float* logits = qbuf + static_cast<size_t>(padded) * shape.head_dim;
  float* raw = logits + static_cast<size_t>(padded) * tokens;
  const int64_t prefix = tokens - window;
  for (int h = 0; h < shape.kv_heads; ++h) {
    KVT_RETURN_IF_ERROR(internal::ObsLogits(shape, obs, window, keys, tokens, token_stride, h, qbuf, logits, stream));
    ObsSoftmaxKernel<<<rows, 512, 0, stream>>>(logits, tokens, prefix, window, 1.0f / shape.group());
    KVT_RETURN_IF_ERROR(LaunchStatus("ObsSoftmaxKernel"));
    const unsigned blocks = static_cast<unsigned>(internal::CeilDiv(prefix, 256));
    SumRowsKernel<<<blocks, 256, 0, stream>>>(logits, rows, tokens, prefix, raw);
    KVT_RETURN_IF_ERROR(LaunchStatus("SumRowsKernel"));
    MaxPoolKernel<<<blocks, 256, 0, stream>>>(raw, prefix, pool / 2, scores + static_cast<int64_t>(h) * prefix);
    KVT_RETURN_IF_ERROR(LaunchStatus("MaxPoolKernel"));
  }
  return Status::Ok();
}

}  // namespace kvt::gpu
