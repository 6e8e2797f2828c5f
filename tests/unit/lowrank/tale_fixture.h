// A random TALE cache image (bases, ragged per-head per-level records, exact window) and its
// float64 reference attention; shared by the CPU kernel test and the CUDA-vs-CPU test.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "host/kernels/lowrank/sym_eigen.h"
#include "host/kernels/lowrank/tale_attention.h"
#include "tests/unit/lowrank/reference.h"

namespace kvt::lowrank_test {

struct TaleFixture {
  int kv = 0, q = 0, d = 0;
  kernels::lowrank::TaleLayout kl, vl;
  std::vector<float> key_basis, value_basis, window_k, window_v, query;
  std::vector<uint8_t> krec[4], vrec[4];
  std::vector<int32_t> counts[4];
  int64_t capacity[4] = {0, 0, 0, 0};
  int window = 0;
  int64_t max_head = 0;

  // Random orthonormal [d][d] (eigenvectors of a random symmetric matrix).
  static void RandomBasis(std::mt19937& rng, int d, float* out) {
    std::normal_distribution<double> g;
    std::vector<double> a(d * d), vals(d), vecs(d * d), ws(d * d);
    for (int i = 0; i < d; ++i) {
      for (int j = i; j < d; ++j) a[i * d + j] = a[j * d + i] = g(rng);
    }
    if (!kernels::lowrank::SymmetricEigen(a.data(), d, vals.data(), vecs.data(), ws.data()).ok()) std::abort();
    for (int i = 0; i < d * d; ++i) out[i] = static_cast<float>(vecs[i]);
  }

  void Build(std::mt19937& rng, int kv_heads, int q_heads, int head_dim, int max_tokens, int window_tokens,
             const kernels::lowrank::TaleFormat& kf, const kernels::lowrank::TaleFormat& vf) {
    kv = kv_heads;
    q = q_heads;
    d = head_dim;
    window = window_tokens;
    kl = kernels::lowrank::MakeTaleLayout(kf).value();
    vl = kernels::lowrank::MakeTaleLayout(vf).value();
    key_basis.resize(static_cast<size_t>(kv) * d * d);
    value_basis.resize(key_basis.size());
    for (int h = 0; h < kv; ++h) {
      RandomBasis(rng, d, key_basis.data() + static_cast<size_t>(h) * d * d);
      RandomBasis(rng, d, value_basis.data() + static_cast<size_t>(h) * d * d);
    }
    std::uniform_int_distribution<int> cnt(0, max_tokens);
    std::vector<int64_t> per_head(kv, 0);
    for (int l = 0; l < 4; ++l) {
      counts[l].resize(kv);
      for (int h = 0; h < kv; ++h) {
        counts[l][h] = cnt(rng);
        per_head[h] += counts[l][h];
      }
      capacity[l] = max_tokens + 3;  // slack: records beyond the count must be ignored
      krec[l].resize(static_cast<size_t>(kv) * capacity[l] * kl.levels[l].record_bytes);
      vrec[l].resize(static_cast<size_t>(kv) * capacity[l] * vl.levels[l].record_bytes);
      for (auto& b : krec[l]) b = static_cast<uint8_t>(rng());
      for (auto& b : vrec[l]) b = static_cast<uint8_t>(rng());
      for (int h = 0; h < kv; ++h) {
        for (int t = 0; t < counts[l][h]; ++t) {
          // Key coefficients scaled so scores spread over a few units (a peaky, realistic softmax).
          auto ck = RandomVector(rng, d, 2.0f);
          auto cv = RandomVector(rng, d, 1.0f);
          kernels::lowrank::TaleEncodeRecord(kl.levels[l], ck.data(),
              krec[l].data() + (static_cast<size_t>(h) * capacity[l] + t) * kl.levels[l].record_bytes);
          kernels::lowrank::TaleEncodeRecord(vl.levels[l], cv.data(),
              vrec[l].data() + (static_cast<size_t>(h) * capacity[l] + t) * vl.levels[l].record_bytes);
        }
      }
    }
    for (int h = 0; h < kv; ++h) max_head = std::max(max_head, per_head[h]);
    window_k = RandomVector(rng, static_cast<size_t>(window) * kv * d, 2.0f);
    window_v = RandomVector(rng, static_cast<size_t>(window) * kv * d, 1.0f);
    query = RandomVector(rng, static_cast<size_t>(q) * d, 1.0f);
  }

  kernels::lowrank::TaleAttentionArgs Args(float* out, float* window_attention) const {
    kernels::lowrank::TaleAttentionArgs a;
    a.num_kv_heads = kv;
    a.num_q_heads = q;
    a.head_dim = d;
    a.key_layout = kl;
    a.value_layout = vl;
    a.key_basis = key_basis.data();
    a.value_basis = value_basis.data();
    for (int l = 0; l < 4; ++l) {
      a.levels[l] = {krec[l].data(), vrec[l].data(), counts[l].data(), capacity[l]};
    }
    a.window_keys = window_k.data();
    a.window_values = window_v.data();
    a.window_tokens = window;
    a.max_head_tokens = max_head;
    a.query = query.data();
    a.out = out;
    a.window_attention = window_attention;
    return a;
  }

  // Reference: decode every record, rebuild K = Bk c and V = Bv c in float64, exact attention.
  // Also fills the reference window attention [kv][window] when non-null.
  std::vector<double> Reference(std::vector<double>* window_attention = nullptr) const {
    std::vector<double> out(static_cast<size_t>(q) * d);
    const int group = q / kv;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    if (window_attention) window_attention->assign(static_cast<size_t>(kv) * window, 0.0);
    for (int h = 0; h < kv; ++h) {
      std::vector<std::vector<double>> keys, values;
      std::vector<float> c(d);
      const float* bk = key_basis.data() + static_cast<size_t>(h) * d * d;
      const float* bv = value_basis.data() + static_cast<size_t>(h) * d * d;
      auto rebuild = [&](const float* b) {
        std::vector<double> x(d, 0.0);
        for (int i = 0; i < d; ++i) {
          for (int j = 0; j < d; ++j) x[i] += static_cast<double>(b[i * d + j]) * c[j];
        }
        return x;
      };
      for (int l = 0; l < 4; ++l) {
        for (int t = 0; t < counts[l][h]; ++t) {
          kernels::lowrank::TaleDecodeRecord(kl.levels[l], d,
              krec[l].data() + (static_cast<size_t>(h) * capacity[l] + t) * kl.levels[l].record_bytes, c.data());
          keys.push_back(rebuild(bk));
          kernels::lowrank::TaleDecodeRecord(vl.levels[l], d,
              vrec[l].data() + (static_cast<size_t>(h) * capacity[l] + t) * vl.levels[l].record_bytes, c.data());
          values.push_back(rebuild(bv));
        }
      }
      const size_t compressed = keys.size();
      for (int w = 0; w < window; ++w) {
        const float* k = window_k.data() + (static_cast<size_t>(w) * kv + h) * d;
        const float* v = window_v.data() + (static_cast<size_t>(w) * kv + h) * d;
        keys.emplace_back(k, k + d);
        values.emplace_back(v, v + d);
      }
      for (int g = 0; g < group; ++g) {
        const float* qq = query.data() + static_cast<size_t>(h * group + g) * d;
        auto o = RefAttention(keys, values, qq, d, scale);
        std::copy(o.begin(), o.end(), out.begin() + static_cast<size_t>(h * group + g) * d);
        if (window_attention) {
          // Softmax weights of the window tokens, averaged over the group.
          std::vector<double> s(keys.size());
          double m = -INFINITY, sum = 0.0;
          for (size_t t = 0; t < keys.size(); ++t) {
            double dot = 0.0;
            for (int i = 0; i < d; ++i) dot += qq[i] * keys[t][i];
            s[t] = dot * scale;
            m = std::max(m, s[t]);
          }
          for (auto& x : s) sum += (x = std::exp(x - m));
          for (int w = 0; w < window; ++w) (*window_attention)[h * window + w] += s[compressed + w] / sum / group;
        }
      }
    }
    return out;
  }
};

}  // namespace kvt::lowrank_test
