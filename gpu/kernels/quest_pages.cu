#include "gpu/kernels/quest_pages.cuh"

#include "gpu/kernels/cuda_status.h"
#include "gpu/kernels/internal/device_common.cuh"

namespace kvt::gpu {
namespace {

// One thread per (page, row element).
__global__ void MinMaxKernel(const Half* keys, int64_t stride, int64_t row, int page, int64_t pages,
                             Half* page_min, Half* page_max) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pages * row) return;
  const int64_t p = i / row, e = i % row;
  const Half* k = keys + p * page * stride + e;
  Half mn = k[0], mx = k[0];
  float fmn = internal::Ld(&mn), fmx = fmn;
  for (int t = 1; t < page; ++t) {
    const float x = internal::Ld(k + t * stride);
    if (x < fmn) fmn = x, mn = k[t * stride];
    if (x > fmx) fmx = x, mx = k[t * stride];
  }
  page_min[i] = mn;
  page_max[i] = mx;
}

// One warp per (page, KV head): lanes over channels, max over the group's bounds.
__global__ void PageScoresKernel(const float* query, const Half* page_min, const Half* page_max,
                                 int64_t pages, int kvh, int g, int d, float* scores) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= pages * kvh) return;
  const int64_t p = w / kvh;
  const int h = static_cast<int>(w % kvh);
  const Half* mn = page_min + (p * kvh + h) * d;
  const Half* mx = page_max + (p * kvh + h) * d;
  float best = -INFINITY;
  for (int j = 0; j < g; ++j) {
    const float* q = query + (static_cast<int64_t>(h) * g + j) * d;
    float acc = 0.0f;
    for (int c = lane; c < d; c += 32) acc += fmaxf(q[c] * internal::Ld(mx + c), q[c] * internal::Ld(mn + c));
    best = fmaxf(best, internal::WarpSum(acc));
  }
  if (lane == 0) scores[static_cast<int64_t>(h) * pages + p] = best;
}

}  // namespace

Status QuestPageMinMaxCuda(const kernels::AttentionShape& shape, int page_size, const kernels::Half* keys,
                           int64_t token_stride, int64_t pages, kernels::Half* page_min,
                           kernels::Half* page_max, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (page_size <= 0 || pages < 0) return InvalidArgument("quest cuda: bad page size or count");
  if (pages == 0) return Status::Ok();
  if (!keys || !page_min || !page_max) return InvalidArgument("quest cuda: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("quest cuda: token_stride smaller than a row");
  MinMaxKernel<<<static_cast<unsigned>(internal::CeilDiv(pages * row, 256)), 256, 0, stream>>>(
      keys, token_stride, row, page_size, pages, page_min, page_max);
  return LaunchStatus("MinMaxKernel");
}

Status QuestPageScoresCuda(const kernels::AttentionShape& shape, const float* query,
                           const kernels::Half* page_min, const kernels::Half* page_max, int64_t pages,
                           float* scores, cudaStream_t stream) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (pages < 0) return InvalidArgument("quest cuda: negative page count");
  if (pages == 0) return Status::Ok();
  if (!query || !page_min || !page_max || !scores) return InvalidArgument("quest cuda: null buffer");
  const int64_t warps = pages * shape.kv_heads;
  PageScoresKernel<<<static_cast<unsigned>(internal::CeilDiv(warps * 32, 256)), 256, 0, stream>>>(
      query, page_min, page_max, pages, shape.kv_heads, shape.group(), shape.head_dim, scores);
  return LaunchStatus("PageScoresKernel");
}

}  // namespace kvt::gpu
