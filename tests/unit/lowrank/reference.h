// Float64 references and random inputs for the lowrank kernel tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace kvt::lowrank_test {

// Fresh random floats, never exactly zero: uniform in [-scale, scale] shifted away from 0.
inline std::vector<float> RandomVector(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    float r = u(rng);
    if (std::fabs(r) < 1e-3f) r = 1e-3f;
    x = r * scale;
  }
  return v;
}

// Exact attention of one query over rows keys[t] / values[t] of one head, float64.
inline std::vector<double> RefAttention(const std::vector<std::vector<double>>& keys,
                                        const std::vector<std::vector<double>>& values,
                                        const float* q, int d, double scale) {
  std::vector<double> s(keys.size());
  double m = -INFINITY;
  for (size_t t = 0; t < keys.size(); ++t) {
    double dot = 0.0;
    for (int i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * keys[t][i];
    s[t] = dot * scale;
    m = std::max(m, s[t]);
  }
  double sum = 0.0;
  std::vector<double> out(d, 0.0);
  for (size_t t = 0; t < keys.size(); ++t) {
    const double p = std::exp(s[t] - m);
    sum += p;
    for (int i = 0; i < d; ++i) out[i] += p * values[t][i];
  }
  for (auto& x : out) x /= sum;
  return out;
}

// Max |a - b| / max(1, max |b|).
inline double RelMaxError(const float* a, const std::vector<double>& b) {
  double err = 0.0, mag = 1.0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(a[i] - b[i]));
    mag = std::max(mag, std::fabs(b[i]));
  }
  return err / mag;
}

// Interleaved-pair RoPE of x [d] at `pos`, float64.
inline std::vector<double> RefRope(const double* x, int d, int pos, double theta) {
  std::vector<double> y(d);
  for (int i = 0; i < d / 2; ++i) {
    const double a = pos * std::pow(theta, -2.0 * i / d);
    y[2 * i] = x[2 * i] * std::cos(a) - x[2 * i + 1] * std::sin(a);
    y[2 * i + 1] = x[2 * i] * std::sin(a) + x[2 * i + 1] * std::cos(a);
  }
  return y;
}

}  // namespace kvt::lowrank_test
