// A generated sequence for the cache tests: pre/post-RoPE keys, values, positions and decode
// queries, plus exact float64 attention over a prefix. Keys are drawn with a decaying spectrum so
// low-rank methods have structure to find (generated data, not a model).
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "host/kernels/half.h"
#include "policies/layer_cache.h"
#include "tests/unit/lowrank/reference.h"

namespace kvt::lowrank_test {

// One attention layer of kv KV heads, q query heads, head_dim d.
inline policies::LayerShape Shape(int kv, int q, int d) {
  policies::LayerShape s;
  s.num_kv_heads = kv;
  s.num_q_heads = q;
  s.head_dim = d;
  s.num_layers = 1;
  return s;
}

struct Sequence {
  int kv = 0, q = 0, d = 0;
  int64_t n = 0;
  std::vector<float> k_pre, k, v;  // [n][kv][d]
  std::vector<int32_t> pos;        // [n]

  void Build(std::mt19937& rng, int kv_heads, int q_heads, int head_dim, int64_t tokens) {
    kv = kv_heads;
    q = q_heads;
    d = head_dim;
    n = tokens;
    std::normal_distribution<float> g;
    k_pre.resize(static_cast<size_t>(n) * kv * d);
    v.resize(k_pre.size());
    k.resize(k_pre.size());
    for (size_t i = 0; i < k_pre.size(); ++i) {
      const int c = static_cast<int>(i % d);
      const float decay = 2.0f / (1.0f + c);
      k_pre[i] = g(rng) * decay + (c == 0 ? 1.0f : 0.0f);
      v[i] = g(rng) * decay + 0.1f;
    }
    pos.resize(n);
    for (int64_t t = 0; t < n; ++t) {
      pos[t] = static_cast<int32_t>(t);
      for (int h = 0; h < kv; ++h) {
        std::vector<double> x(d);
        const size_t o = (static_cast<size_t>(t) * kv + h) * d;
        for (int i = 0; i < d; ++i) x[i] = k_pre[o + i];
        auto y = RefRope(x.data(), d, pos[t], 10000.0);
        for (int i = 0; i < d; ++i) k[o + i] = static_cast<float>(y[i]);
      }
    }
  }

  // Rounds the post-RoPE keys and the values to fp16 in place, so that a cache storing fp16 holds
  // exactly what Exact() attends over.
  void RoundKvToHalf() {
    for (auto& x : k) x = kernels::RoundToHalf(x);
    for (auto& x : v) x = kernels::RoundToHalf(x);
  }

  policies::AppendBatch Batch(int64_t begin, int64_t count) const {
    const size_t o = static_cast<size_t>(begin) * kv * d;
    return {k.data() + o, k_pre.data() + o, v.data() + o, pos.data() + begin, static_cast<int>(count)};
  }

  // Exact attention of `query` [q][d] over tokens [0, upto).
  std::vector<double> Exact(const float* query, int64_t upto) const {
    std::vector<double> out(static_cast<size_t>(q) * d);
    const int group = q / kv;
    for (int h = 0; h < kv; ++h) {
      std::vector<std::vector<double>> kk, vv;
      for (int64_t t = 0; t < upto; ++t) {
        const size_t o = (static_cast<size_t>(t) * kv + h) * d;
        kk.emplace_back(k.begin() + o, k.begin() + o + d);
        vv.emplace_back(v.begin() + o, v.begin() + o + d);
      }
      for (int g = 0; g < group; ++g) {
        auto r = RefAttention(kk, vv, query + static_cast<size_t>(h * group + g) * d, d, 1.0 / std::sqrt(double(d)));
        std::copy(r.begin(), r.end(), out.begin() + static_cast<size_t>(h * group + g) * d);
      }
    }
    return out;
  }
};

}  // namespace kvt::lowrank_test
