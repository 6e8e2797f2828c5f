// TailorKV critical-channel selection (CPU). CUDA twin: gpu/kernels/channel_select.cuh.
// (Yao et al., "TailorKV", Sec. 4.2: channel importance s_i = |q_i| * max_t |K_t,i|, the top d_s
// channels of a KV head approximate its attention scores.)
//
// KeyChannelAbsMax folds new key rows into a running per-channel max |K| (call it as tokens are
// appended; start from zeros). TopChannels averages the query over each KV head's query group
// (q̂), scores channels by |q̂_i| * absmax_i and returns the top `channels` per KV head (ties to the
// smaller channel, ascending channel order) together with q̂.
// Pure; allocate nothing; block until done.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels {

//   keys   token-major rows `token_stride` elements apart: (t, h, c) at t*token_stride + h*head_dim + c
//   absmax [kv_heads][head_dim], updated in place
Status KeyChannelAbsMax(const AttentionShape& shape, const Half* keys, int64_t tokens,
                        int64_t token_stride, float* absmax);

//   query    [q_heads][head_dim]
//   absmax   [kv_heads][head_dim]
//   qhat     [kv_heads][head_dim]   (out) group-mean query
//   selected [kv_heads][channels]   (out) channel indices, ascending
Status TopChannels(const AttentionShape& shape, const float* query, const float* absmax,
                   int channels, float* qhat, int32_t* selected);

}  // namespace kvt::kernels
