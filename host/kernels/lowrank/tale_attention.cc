#include "host/kernels/lowrank/tale_attention.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "host/kernels/lowrank/internal/fast_math.h"
#include "host/kernels/lowrank/internal/half_bits.h"

namespace kvt::kernels::lowrank {
namespace {

// Floats of workspace one head needs.
size_t HeadWorkspaceFloats(const TaleAttentionArgs& a) {
  const size_t group = static_cast<size_t>(a.num_q_heads / std::max(1, a.num_kv_heads));
  const size_t tokens = static_cast<size_t>(a.max_head_tokens) + static_cast<size_t>(a.window_tokens);
  const size_t d = static_cast<size_t>(a.head_dim);
  // scores [tokens][group], q' [group][d], coefficient acc [group][d], exact acc [group][d],
  // decode buffer [d], padding.
  return tokens * group + 3 * group * d + d + 16;
}

// Decodes one segment's codes into centered values (code - offset) * scale.
[[gnu::always_inline]] inline void DecodeSegment(const uint8_t* record, const TaleSegment& seg,
                                                 float* out) {
  const int len = seg.end - seg.begin;
  const uint8_t* codes = record + seg.code_offset;
  switch (seg.bits) {
    case 32:
      std::memcpy(out, codes, static_cast<size_t>(len) * 4);
      return;
    case 16:
      for (int i = 0; i < len; ++i) {
        uint16_t h;
        std::memcpy(&h, codes + 2 * i, 2);
        out[i] = internal::HalfBitsToFloat(h);
      }
      return;
    default:
      break;
  }
  uint16_t scale_bits;
  std::memcpy(&scale_bits, record + seg.scale_offset, 2);
  const float scale = internal::HalfBitsToFloat(scale_bits);
  if (seg.bits == 8) {
    const float off = 127.5f * scale;
    for (int i = 0; i < len; ++i) out[i] = static_cast<float>(codes[i]) * scale - off;
  } else if (seg.bits == 4) {
    const float off = 7.5f * scale;
    for (int j = 0; j < len / 2; ++j) {
      out[2 * j] = static_cast<float>(codes[j] & 15) * scale - off;
      out[2 * j + 1] = static_cast<float>(codes[j] >> 4) * scale - off;
    }
    if (len & 1) out[len - 1] = static_cast<float>(codes[len / 2] & 15) * scale - off;
  } else {  // 2 bits
    const float off = 1.5f * scale;
    for (int i = 0; i < len; ++i) {
      const int q = (codes[i >> 2] >> ((i & 3) * 2)) & 3;
      out[i] = static_cast<float>(q) * scale - off;
    }
  }
}

[[gnu::always_inline]] inline float Dot(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

[[gnu::always_inline]] inline void Axpy(float w, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += w * x[i];
}

[[gnu::always_inline]] inline void RunHead(const TaleAttentionArgs& a, int h, float* ws) {
  const int d = a.head_dim;
  const int group = a.num_q_heads / a.num_kv_heads;
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(d));
  int64_t n_h = 0;
  for (int l = 0; l < kTaleLevels; ++l) {
    if (a.levels[l].tokens != nullptr) n_h += a.levels[l].tokens[h];
  }
  const int64_t total = n_h + a.window_tokens;
  float* scores = ws;                                 // [total][group]
  float* qp = scores + total * group;                 // [group][d]
  float* acc = qp + static_cast<size_t>(group) * d;   // [group][d] value coefficients
  float* exact = acc + static_cast<size_t>(group) * d;  // [group][d] window values
  float* buf = exact + static_cast<size_t>(group) * d;  // [d]
  const float* bk = a.key_basis + static_cast<size_t>(h) * d * d;
  const float* bv = a.value_basis + static_cast<size_t>(h) * d * d;
  const float* q0 = a.query + static_cast<size_t>(h) * group * d;

  // q' = scale * Bk^T q, once per query.
  for (int g = 0; g < group; ++g) {
    float* qg = qp + static_cast<size_t>(g) * d;
    for (int j = 0; j < d; ++j) qg[j] = 0.0f;
    for (int i = 0; i < d; ++i) Axpy(scale * q0[g * d + i], bk + static_cast<size_t>(i) * d, qg, d);
  }
  float maxs[64];
  for (int g = 0; g < group; ++g) maxs[g] = -INFINITY;

  // Pass 1: scores.
  int64_t t_out = 0;
  for (int l = 0; l < kTaleLevels; ++l) {
    const TaleLevelBuffers& lb = a.levels[l];
    if (lb.tokens == nullptr) continue;
    const TaleLevelLayout& kl = a.key_layout.levels[l];
    const uint8_t* base = lb.key_records + static_cast<size_t>(h) * lb.capacity * kl.record_bytes;
    for (int64_t t = 0; t < lb.tokens[h]; ++t, ++t_out) {
      const uint8_t* rec = base + static_cast<size_t>(t) * kl.record_bytes;
      float* st = scores + t_out * group;
      for (int g = 0; g < group; ++g) st[g] = 0.0f;
      for (int s = 0; s < kl.num_segments; ++s) {
        const TaleSegment& seg = kl.segments[s];
        const int len = seg.end - seg.begin;
        if (len <= 0) continue;
        DecodeSegment(rec, seg, buf);
        for (int g = 0; g < group; ++g) st[g] += Dot(qp + static_cast<size_t>(g) * d + seg.begin, buf, len);
      }
      for (int g = 0; g < group; ++g) maxs[g] = std::max(maxs[g], st[g]);
    }
  }
  for (int w = 0; w < a.window_tokens; ++w, ++t_out) {
    const float* k = a.window_keys + (static_cast<size_t>(w) * a.num_kv_heads + h) * d;
    float* st = scores + t_out * group;
    for (int g = 0; g < group; ++g) {
      st[g] = scale * Dot(q0 + static_cast<size_t>(g) * d, k, d);
      maxs[g] = std::max(maxs[g], st[g]);
    }
  }

  // Pass 2: softmax weights and value accumulation in coefficient space.
  for (size_t i = 0; i < static_cast<size_t>(2 * group * d); ++i) acc[i] = 0.0f;
  float sums[64];
  for (int g = 0; g < group; ++g) sums[g] = 0.0f;
  t_out = 0;
  for (int l = 0; l < kTaleLevels; ++l) {
    const TaleLevelBuffers& lb = a.levels[l];
    if (lb.tokens == nullptr) continue;
    const TaleLevelLayout& vl = a.value_layout.levels[l];
    const uint8_t* base = lb.value_records + static_cast<size_t>(h) * lb.capacity * vl.record_bytes;
    for (int64_t t = 0; t < lb.tokens[h]; ++t, ++t_out) {
      const uint8_t* rec = base + static_cast<size_t>(t) * vl.record_bytes;
      float* st = scores + t_out * group;
      for (int g = 0; g < group; ++g) {
        st[g] = internal::FastExp(st[g] - maxs[g]);
        sums[g] += st[g];
      }
      for (int s = 0; s < vl.num_segments; ++s) {
        const TaleSegment& seg = vl.segments[s];
        const int len = seg.end - seg.begin;
        if (len <= 0) continue;
        DecodeSegment(rec, seg, buf);
        for (int g = 0; g < group; ++g) Axpy(st[g], buf, acc + static_cast<size_t>(g) * d + seg.begin, len);
      }
    }
  }
  const int64_t window_begin = t_out;
  for (int w = 0; w < a.window_tokens; ++w, ++t_out) {
    const float* v = a.window_values + (static_cast<size_t>(w) * a.num_kv_heads + h) * d;
    float* st = scores + t_out * group;
    for (int g = 0; g < group; ++g) {
      const float p = internal::FastExp(st[g] - maxs[g]);
      st[g] = p;
      sums[g] += p;
      Axpy(p, v, exact + static_cast<size_t>(g) * d, d);
    }
  }
  if (a.window_attention != nullptr) {
    float* wa = a.window_attention + static_cast<size_t>(h) * a.window_tokens;
    for (int w = 0; w < a.window_tokens; ++w) {
      const float* st = scores + (window_begin + w) * group;
      float m = 0.0f;
      for (int g = 0; g < group; ++g) m += st[g] / sums[g];
      wa[w] = m / static_cast<float>(group);
    }
  }

  // out = (Bv acc + exact) / sum, one projection back per query.
  for (int g = 0; g < group; ++g) {
    float* o = a.out + (static_cast<size_t>(h) * group + g) * d;
    const float* ag = acc + static_cast<size_t>(g) * d;
    const float* eg = exact + static_cast<size_t>(g) * d;
    const float inv = sums[g] > 0.0f ? 1.0f / sums[g] : 0.0f;
    for (int i = 0; i < d; ++i) o[i] = (Dot(bv + static_cast<size_t>(i) * d, ag, d) + eg[i]) * inv;
  }
}

#if KVT_LOWRANK_HAVE_AVX2_PATH
KVT_LOWRANK_AVX2 void RunHeadAvx2(const TaleAttentionArgs& a, int h, float* ws) { RunHead(a, h, ws); }
#endif
void RunHeadGeneric(const TaleAttentionArgs& a, int h, float* ws) { RunHead(a, h, ws); }

}  // namespace

Status ValidateTaleAttentionArgs(const TaleAttentionArgs& a) {
  if (a.num_kv_heads < 1 || a.num_q_heads < a.num_kv_heads || a.num_q_heads % a.num_kv_heads != 0) {
    return InvalidArgument("TaleAttention: q_heads must be a positive multiple of kv_heads");
  }
  if (a.num_q_heads / a.num_kv_heads > 64) return InvalidArgument("TaleAttention: group > 64");
  if (a.head_dim < 1 || a.head_dim > kTaleMaxHeadDim || a.key_layout.head_dim != a.head_dim ||
      a.value_layout.head_dim != a.head_dim) {
    return InvalidArgument("TaleAttention: head_dim does not match the layouts");
  }
  if (a.key_basis == nullptr || a.value_basis == nullptr || a.query == nullptr || a.out == nullptr) {
    return InvalidArgument("TaleAttention: null basis, query or output");
  }
  if (a.window_tokens < 0 || (a.window_tokens > 0 && (a.window_keys == nullptr || a.window_values == nullptr))) {
    return InvalidArgument("TaleAttention: bad window");
  }
  if (a.max_head_tokens < 0) return InvalidArgument("TaleAttention: negative max_head_tokens");
  for (int l = 0; l < kTaleLevels; ++l) {
    const TaleLevelBuffers& lb = a.levels[l];
    if (lb.tokens == nullptr) continue;
    if (lb.capacity < 0 || (lb.capacity > 0 && (lb.key_records == nullptr || lb.value_records == nullptr))) {
      return InvalidArgument("TaleAttention: level " + std::to_string(l) + " has no records");
    }
  }
  return Status::Ok();
}

size_t TaleAttentionWorkspaceBytes(const TaleAttentionArgs& args) {
  return static_cast<size_t>(std::max(0, args.num_kv_heads)) * HeadWorkspaceFloats(args) * sizeof(float);
}

Status TaleAttention(const TaleAttentionArgs& args, void* workspace, size_t workspace_bytes) {
  KVT_RETURN_IF_ERROR(ValidateTaleAttentionArgs(args));
  if (workspace == nullptr || workspace_bytes < TaleAttentionWorkspaceBytes(args)) {
    return InvalidArgument("TaleAttention: workspace smaller than TaleAttentionWorkspaceBytes");
  }
  for (int h = 0; h < args.num_kv_heads; ++h) {
    int64_t n = 0;
    for (int l = 0; l < kTaleLevels; ++l) {
      const TaleLevelBuffers& lb = args.levels[l];
      if (lb.tokens == nullptr) continue;
      if (lb.tokens[h] < 0 || lb.tokens[h] > lb.capacity) {
        return InvalidArgument("TaleAttention: level token count outside [0, capacity]");
      }
      n += lb.tokens[h];
    }
    if (n > args.max_head_tokens) return InvalidArgument("TaleAttention: head exceeds max_head_tokens");
  }
  const size_t per_head = HeadWorkspaceFloats(args);
  float* ws = static_cast<float*>(workspace);
#if KVT_LOWRANK_HAVE_AVX2_PATH
  const bool avx2 = internal::HasAvx2Fma();
#endif
  tbb::parallel_for(tbb::blocked_range<int>(0, args.num_kv_heads), [&](const tbb::blocked_range<int>& r) {
    for (int h = r.begin(); h < r.end(); ++h) {
      float* hw = ws + static_cast<size_t>(h) * per_head;
#if KVT_LOWRANK_HAVE_AVX2_PATH
      if (avx2) {
        RunHeadAvx2(args, h, hw);
        continue;
      }
#endif
      RunHeadGeneric(args, h, hw);
    }
  });
  return Status::Ok();
}

}  // namespace kvt::kernels::lowrank
