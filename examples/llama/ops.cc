#include "examples/llama/ops.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

namespace kvt::llama::ops {
namespace {

// Multiply-adds below which a product runs on the calling thread (tasks cost microseconds).
constexpr int64_t kSerialWork = 1 << 16;

int RowGrain(int64_t work_per_row) {
  return static_cast<int>(std::max<int64_t>(1, kSerialWork / std::max<int64_t>(1, work_per_row)));
}

}  // namespace

float Dot(const float* a, const float* b, int n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void MatVec(const float* w, const float* x, float* y, int out, int in) {
  const int64_t work = int64_t{out} * in;
  if (work <= kSerialWork) {
    for (int o = 0; o < out; ++o) y[o] = Dot(w + int64_t{o} * in, x, in);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int>(0, out, RowGrain(in)), [&](const tbb::blocked_range<int>& r) {
    for (int o = r.begin(); o < r.end(); ++o) y[o] = Dot(w + int64_t{o} * in, x, in);
  });
}

void MatMul(const float* x, const float* w, float* y, int tokens, int out, int in) {
  // Blocks of weight rows stay in cache while every token passes over them.
  auto block = [&](int o0, int o1) {
    for (int t = 0; t < tokens; ++t) {
      const float* xt = x + int64_t{t} * in;
      float* yt = y + int64_t{t} * out;
      for (int o = o0; o < o1; ++o) yt[o] = Dot(w + int64_t{o} * in, xt, in);
    }
  };
  const int64_t work = int64_t{tokens} * out * in;
  if (work <= kSerialWork) {
    block(0, out);
    return;
  }
  const int grain = std::clamp(RowGrain(int64_t{tokens} * in), 1, 64);
  tbb::parallel_for(tbb::blocked_range<int>(0, out, grain),
                    [&](const tbb::blocked_range<int>& r) { block(r.begin(), r.end()); });
}

void RmsNorm(const float* x, const float* weight, float* out, int n, float eps) {
  float ss = Dot(x, x, n);
  ss = ss / static_cast<float>(n) + eps;
  ss = 1.0f / std::sqrt(ss);
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (ss * x[i]);
}

namespace {
template <bool kInverse>
void RopeImpl(float* v, int heads, int head_dim, int pos, float theta) {
  for (int i = 0; i < head_dim; i += 2) {
    const float freq = 1.0f / std::pow(theta, static_cast<float>(i) / static_cast<float>(head_dim));
    const float angle = static_cast<float>(pos) * freq;
    const float c = std::cos(angle);
    const float s = kInverse ? -std::sin(angle) : std::sin(angle);
    for (int h = 0; h < heads; ++h) {
      float* p = v + int64_t{h} * head_dim + i;
      const float a = p[0], b = p[1];
      p[0] = a * c - b * s;
      p[1] = a * s + b * c;
    }
  }
}
}  // namespace

void Rope(float* v, int heads, int head_dim, int pos, float theta) {
  RopeImpl<false>(v, heads, head_dim, pos, theta);
}

void RopeInverse(float* v, int heads, int head_dim, int pos, float theta) {
  RopeImpl<true>(v, heads, head_dim, pos, theta);
}

void Softmax(float* x, int n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

void SwiGlu(float* h1, const float* h3, int n) {
  for (int i = 0; i < n; ++i) {
    const float a = h1[i];
    h1[i] = a * (1.0f / (1.0f + std::exp(-a))) * h3[i];
  }
}

void Axpy(float a, const float* v, float* out, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] += a * v[i];
}

}  // namespace kvt::llama::ops
