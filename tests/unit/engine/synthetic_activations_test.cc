// Realistic-shape mode: generated Llama-3.1-8B-shaped Q/K/V are well formed and reproducible.
#include <gtest/gtest.h>

#include <cmath>

#include "examples/llama/ops.h"
#include "examples/llama/synthetic_activations.h"

namespace kvt::llama {
namespace {

TEST(SyntheticActivations, Llama31ShapesDeterministicAndRoped) {
  const SyntheticShape s = SyntheticShape::Llama31_8B();
  EXPECT_EQ(s.layers, 32);
  EXPECT_EQ(s.q_heads, 32);
  EXPECT_EQ(s.kv_heads, 8);
  EXPECT_EQ(s.head_dim, 128);
  auto a = GenerateSyntheticQkv(s, 3, 40, 7);
  auto b = GenerateSyntheticQkv(s, 3, 40, 7);
  auto other = GenerateSyntheticQkv(s, 4, 40, 7);
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  ASSERT_EQ(a->q.size(), 40u * 32 * 128);
  ASSERT_EQ(a->k.size(), 40u * 8 * 128);
  ASSERT_EQ(a->v.size(), a->k.size());
  EXPECT_EQ(a->q, b->q);
  EXPECT_EQ(a->v, b->v);
  EXPECT_NE(a->k, other->k);
  for (float x : a->q) ASSERT_TRUE(std::isfinite(x));
  for (int t = 0; t < 40; ++t) {
    std::vector<float> r(a->k_pre.begin() + t * 1024, a->k_pre.begin() + (t + 1) * 1024);
    ops::Rope(r.data(), 8, 128, t, s.rope_theta);
    for (int j = 0; j < 1024; ++j) ASSERT_EQ(r[j], a->k[t * 1024 + j]);
  }
  // Keys carry per-channel outliers: the largest channel mean is far above the typical one.
  double mx = 0, mean = 0;
  for (int ch = 0; ch < 128; ++ch) {
    double m = 0;
    for (int t = 0; t < 40; ++t) m += std::abs(a->k_pre[t * 1024 + ch]);
    mx = std::max(mx, m);
    mean += m / 128;
  }
  EXPECT_GT(mx, 3 * mean);
}

TEST(SyntheticActivations, RejectsBadArguments) {
  SyntheticShape s;
  EXPECT_FALSE(GenerateSyntheticQkv(s, 32, 10, 1).ok());
  EXPECT_FALSE(GenerateSyntheticQkv(s, 0, 0, 1).ok());
  s.q_heads = 30;
  EXPECT_FALSE(GenerateSyntheticQkv(s, 0, 10, 1).ok());
}

}  // namespace
}  // namespace kvt::llama
