// Naive float64 references and random inputs for the kernel tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "host/kernels/attention_shape.h"
#include "host/kernels/half.h"

namespace kvt::kernels::testing {

// Uniform in [-scale, scale], never zero (|x| >= scale / 1000), rounded to fp16.
inline std::vector<Half> RandomHalves(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<Half> out(n);
  for (auto& h : out) {
    float x;
    do x = u(rng);
    while (std::fabs(x) < scale * 1e-3f);
    h = FloatToHalf(x);
  }
  return out;
}

inline std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> out(n);
  for (auto& x : out) {
    do x = u(rng);
    while (std::fabs(x) < scale * 1e-3f);
  }
  return out;
}

inline std::vector<double> ToDouble(const std::vector<Half>& h) {
  std::vector<double> d(h.size());
  for (size_t i = 0; i < h.size(); ++i) d[i] = HalfToFloat(h[i]);
  return d;
}

// Attention of one query head over tokens given by accessors k(t, c), v(t, c); float64 throughout.
template <typename K, typename V>
std::vector<double> RefAttendHead(const float* q, int d, int64_t tokens, K k, V v) {
  std::vector<double> s(tokens);
  double m = -INFINITY;
  for (int64_t t = 0; t < tokens; ++t) {
    double acc = 0;
    for (int c = 0; c < d; ++c) acc += static_cast<double>(q[c]) * k(t, c);
    s[t] = acc / std::sqrt(static_cast<double>(d));
    m = std::max(m, s[t]);
  }
  double sum = 0;
  for (auto& x : s) sum += (x = std::exp(x - m));
  std::vector<double> out(d, 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int c = 0; c < d; ++c) out[c] += s[t] / sum * v(t, c);
  }
  return out;
}

// Reference over token-major [tokens][kv_heads][head_dim] float64 K and V, grouped-query.
inline std::vector<double> RefAttention(const AttentionShape& s, const float* query,
                                        const std::vector<double>& k, const std::vector<double>& v,
                                        int64_t tokens) {
  std::vector<double> out(static_cast<size_t>(s.q_heads) * s.head_dim);
  const int d = s.head_dim, row = s.kv_heads * d;
  for (int j = 0; j < s.q_heads; ++j) {
    const int h = j / s.group();
    auto o = RefAttendHead(query + j * d, d, tokens,
                           [&](int64_t t, int c) { return k[t * row + h * d + c]; },
                           [&](int64_t t, int c) { return v[t * row + h * d + c]; });
    std::copy(o.begin(), o.end(), out.begin() + j * d);
  }
  return out;
}

// Max |a - b| relative to max |b| (at least 1e-30).
template <typename A, typename B>
double MaxRelError(const A& a, const B& b) {
  double err = 0, mag = 1e-30;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    mag = std::max(mag, std::fabs(static_cast<double>(b[i])));
  }
  return err / mag;
}

}  // namespace kvt::kernels::testing
