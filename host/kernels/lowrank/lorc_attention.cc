#include "host/kernels/lowrank/lorc_attention.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "host/kernels/lowrank/internal/fast_math.h"

namespace kvt::kernels::lowrank {
namespace {

size_t HeadFloats(const LorcAttentionArgs& a) {
  const size_t group = static_cast<size_t>(a.num_q_heads / std::max(1, a.num_kv_heads));
  return static_cast<size_t>(a.tokens) * group + group * a.value_rank + 3 * a.head_dim + 16;
}

}  // namespace

void LorcRopeTable(int32_t position, int head_dim, float theta, float* rope) {
  for (int i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
    const double angle = static_cast<double>(position) * freq;
    rope[2 * i] = static_cast<float>(std::cos(angle));
    rope[2 * i + 1] = static_cast<float>(std::sin(angle));
  }
}

size_t LorcAttentionWorkspaceBytes(const LorcAttentionArgs& args) {
  return static_cast<size_t>(std::max(0, args.num_kv_heads)) * HeadFloats(args) * sizeof(float);
}

Status LorcAttention(const LorcAttentionArgs& a, void* workspace, size_t workspace_bytes) {
  if (a.num_kv_heads < 1 || a.num_q_heads < a.num_kv_heads || a.num_q_heads % a.num_kv_heads != 0 ||
      a.num_q_heads / a.num_kv_heads > 64) {
    return InvalidArgument("LorcAttention: q_heads must be a multiple (<= 64x) of kv_heads");
  }
  if (a.head_dim < 2 || a.head_dim % 2 != 0 || a.key_rank < 1 || a.key_rank > a.head_dim ||
      a.value_rank < 1 || a.value_rank > a.head_dim) {
    return InvalidArgument("LorcAttention: need an even head_dim and ranks in [1, head_dim]");
  }
  if (a.tokens < 0 || a.tokens > a.capacity) return InvalidArgument("LorcAttention: tokens > capacity");
  if (a.key_up == nullptr || a.value_up == nullptr || a.query == nullptr || a.out == nullptr ||
      (a.tokens > 0 && (a.key_latents == nullptr || a.value_latents == nullptr || a.rope == nullptr))) {
    return InvalidArgument("LorcAttention: null pointer");
  }
  if (workspace == nullptr || workspace_bytes < LorcAttentionWorkspaceBytes(a)) {
    return InvalidArgument("LorcAttention: workspace too small");
  }
  const int d = a.head_dim, rk = a.key_rank, rv = a.value_rank;
  const int group = a.num_q_heads / a.num_kv_heads;
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(d));
  const size_t per_head = HeadFloats(a);
  float* ws = static_cast<float*>(workspace);
  tbb::parallel_for(tbb::blocked_range<int>(0, a.num_kv_heads), [&](const tbb::blocked_range<int>& r) {
    for (int h = r.begin(); h < r.end(); ++h) {
      float* scores = ws + static_cast<size_t>(h) * per_head;  // [tokens][group]
      float* acc = scores + a.tokens * group;                  // [group][rv]
      float* kpre = acc + static_cast<size_t>(group) * rv;     // [d]
      float* k = kpre + d;                                     // [d]
      float* lat = k + d;                                      // [max(rk, rv)] one token's latents
      const float* uk = a.key_up + static_cast<size_t>(h) * d * rk;
      const float* uv = a.value_up + static_cast<size_t>(h) * d * rv;
      const float* q0 = a.query + static_cast<size_t>(h) * group * d;
      float maxs[64], sums[64];
      for (int g = 0; g < group; ++g) {
        maxs[g] = -INFINITY;
        sums[g] = 0.0f;
      }
      for (int64_t t = 0; t < a.tokens; ++t) {
        const Half* ch = a.key_latents + (static_cast<size_t>(h) * a.capacity + t) * rk;
        for (int j = 0; j < rk; ++j) lat[j] = HalfToFloat(ch[j]);
        for (int i = 0; i < d; ++i) {
          float x = 0.0f;
          for (int j = 0; j < rk; ++j) x += uk[i * rk + j] * lat[j];
          kpre[i] = x;
        }
        const float* cs = a.rope + static_cast<size_t>(t) * d;
        for (int i = 0; i < d / 2; ++i) {
          const float x0 = kpre[2 * i], x1 = kpre[2 * i + 1];
          k[2 * i] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
          k[2 * i + 1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
        }
        for (int g = 0; g < group; ++g) {
          float dot = 0.0f;
          for (int i = 0; i < d; ++i) dot += q0[g * d + i] * k[i];
          scores[t * group + g] = dot * scale;
          maxs[g] = std::max(maxs[g], dot * scale);
        }
      }
      std::fill(acc, acc + static_cast<size_t>(group) * rv, 0.0f);
      for (int64_t t = 0; t < a.tokens; ++t) {
        const Half* ch = a.value_latents + (static_cast<size_t>(h) * a.capacity + t) * rv;
        for (int j = 0; j < rv; ++j) lat[j] = HalfToFloat(ch[j]);
        for (int g = 0; g < group; ++g) {
          const float p = internal::FastExp(scores[t * group + g] - maxs[g]);
          sums[g] += p;
          for (int j = 0; j < rv; ++j) acc[g * rv + j] += p * lat[j];
        }
      }
      for (int g = 0; g < group; ++g) {
        float* o = a.out + (static_cast<size_t>(h) * group + g) * d;
        const float inv = sums[g] > 0.0f ? 1.0f / sums[g] : 0.0f;
        for (int i = 0; i < d; ++i) {
          float x = 0.0f;
          for (int j = 0; j < rv; ++j) x += uv[i * rv + j] * acc[g * rv + j];
          o[i] = x * inv;
        }
      }
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels::lowrank
