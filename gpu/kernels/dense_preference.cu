#include "gpu/kernels/dense_preference.cuh"

#include "gpu/kernels/internal/obs_logits.cuh"
#include "gpu/kernels/internal/radix_select.cuh"
#include "host/kernels/dense_preference.h"

namespace kvt::gpu {
namespace {

__device__ int64_t TopCount(int64_t length, float top_frac) {
  const double m = static_cast<double>(top_frac) * static_cast<double>(length);
  int64_t c = static_cast<int64_t>(m);
  if (static_cast<double>(c) < m) ++c;
  return c < 1 ? 1 : (c > length ? length : c);
}

// One block per row: 1 - (mass of the top ceil(top_frac * len) tokens) into row_values[row].
__global__ void RowPreferenceKernel(float* logits, int64_t tokens, int window, float top_frac,
                                    float* row_values) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  float* s = logits + static_cast<int64_t>(r) * tokens;
  const int64_t len = tokens - window + r % window + 1;
  float m = -INFINITY;
  for (int64_t t = threadIdx.x; t < len; t += blockDim.x) m = fmaxf(m, s[t]);
  m = internal::BlockMax(m, scratch);
  float sum = 0.0f;
  for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
    const float e = __expf(s[t] - m);
    s[t] = e;
    sum += e;
  }
  sum = internal::BlockSum(sum, scratch);
  const int64_t top = TopCount(len, top_frac);
  int64_t greater = 0;
  const uint32_t key = internal::RadixSelect([s](int64_t i) { return internal::OrderKey(s[i]); }, len, top, &greater);
  const float thr = __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
  float above = 0.0f;
  for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
    if (internal::OrderKey(s[t]) > key) above += s[t];
  }
  above = internal::BlockSum(above, scratch);
  if (threadIdx.x == 0) {
    row_values[r] = 1.0f - (above + static_cast<float>(top - greater) * thr) / sum;
  }
}

__global__ void MeanKernel(const float* v, int n, float* out) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = internal::BlockSum(acc, scratch);
  if (threadIdx.x == 0) *out = acc / static_cast<float>(n);
}

}  // namespace

size_t DensePreferenceWorkspaceBytesCuda(const kernels::AttentionShape& shape, int window, int64_t tokens) {
  const size_t padded = internal::ObsRowsPadded(shape, window);
  return sizeof(float) * (padded * shape.head_dim + padded * tokens + static_cast<size_t>(shape.q_heads) * window);
}

Status DensePreferenceScoreCuda(const kernels::AttentionShape& shape, const float* obs, int window,
                                const kernels::Half* keys, int64_t tokens, int64_t token_stride,
                                float top_frac, float* score, void* workspace, size_t workspace_bytes,
                                cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (window <= 0 || tokens < window) return InvalidArgument("dense preference cuda: need 0 < window <= tokens");
  if (!(top_frac > 0.0f && top_frac <= 1.0f)) return InvalidArgument("dense preference cuda: top_frac in (0, 1]");
  if (!obs || !keys || !score || !workspace) return InvalidArgument("dense preference cuda: null buffer");
  if (token_stride < static_cast<int64_t>(shape.kv_heads) * shape.head_dim) {
    return InvalidArgument("dense preference cuda: token_stride smaller than a row");
  }
  if (workspace_bytes < DensePreferenceWorkspaceBytesCuda(shape, window, tokens)) {
    return InvalidArgument("dense preference cuda: workspace too small");
  }
  const int padded = internal::ObsRowsPadded(shape, window), rows = shape.group() * window;
  float* qbuf = static_cast<float*>(workspace);
  float* logits = qbuf + static_cast<size_t>(padded) * shape.head_dim;
  float* row_values = logits + static_cast<size_t>(padded) * tokens;
  for (int h = 0; h < shape.kv_heads; ++h) {
    KVT_RETURN_IF_ERROR(internal::ObsLogits(shape, obs, window, keys, tokens, token_stride, h, qbuf, logits, stream));
    RowPreferenceKernel<<<rows, 1024, 0, stream>>>(logits, tokens, window, top_frac,
                                                   row_values + static_cast<int64_t>(h) * rows);
    KVT_RETURN_IF_ERROR(LaunchStatus("RowPreferenceKernel"));
  }
  MeanKernel<<<1, 1024, 0, stream>>>(row_values, shape.q_heads * window, score);
  return LaunchStatus("MeanKernel");
}

}  // namespace kvt::gpu
