#include "host/kernels/channel_select.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/kernels/internal/simd.h"
#include "host/kernels/topk.h"

namespace kvt::kernels {

Status KeyChannelAbsMax(const AttentionShape& shape, const Half* keys, int64_t tokens,
                        int64_t token_stride, float* absmax) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  if (tokens < 0) return InvalidArgument("channel absmax: negative tokens");
  if (tokens == 0) return Status::Ok();
  if (!keys || !absmax) return InvalidArgument("channel absmax: null buffer");
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  if (token_stride < row) return InvalidArgument("channel absmax: token_stride smaller than a row");
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t t = 0; t < tokens; ++t) {  // absmax (kv_heads * head_dim floats) stays in L1
    for (int64_t c = 0; c < row; c += 8) {
      const __m256 x = _mm256_andnot_ps(sign, internal::Load8(keys + t * token_stride + c));
      _mm256_storeu_ps(absmax + c, _mm256_max_ps(_mm256_loadu_ps(absmax + c), x));
    }
  }
  return Status::Ok();
}

Status TopChannels(const AttentionShape& shape, const float* query, const float* absmax,
                   int channels, float* qhat, int32_t* selected) {
  KVT_RETURN_IF_ERROR(shape.Validate());
  const int d = shape.head_dim, g = shape.group();
  if (channels <= 0 || channels > d) return InvalidArgument("top channels: need 0 < channels <= head_dim");
  if (!query || !absmax || !qhat || !selected) return InvalidArgument("top channels: null buffer");
  float importance[1024];
  uint32_t keys[1024];
  for (int h = 0; h < shape.kv_heads; ++h) {
    float* qh = qhat + static_cast<int64_t>(h) * d;
    for (int c = 0; c < d; ++c) {
      float s = 0.0f;
      for (int j = 0; j < g; ++j) s += query[(static_cast<int64_t>(h) * g + j) * d + c];
      qh[c] = s / static_cast<float>(g);
      importance[c] = std::fabs(qh[c]) * absmax[static_cast<int64_t>(h) * d + c];
    }
    KVT_RETURN_IF_ERROR(TopK(importance, 1, d, d, channels, selected + static_cast<int64_t>(h) * channels,
                             std::span<uint32_t>(keys, d)));
  }
  return Status::Ok();
}

}  // namespace kvt::kernels
