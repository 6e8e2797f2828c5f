// KIVI decode attention vs a float64 reference over the dequantized cache plus fp16 residuals.
#include "host/kernels/kivi_attention.h"

#include <gtest/gtest.h>

#include <vector>

#include "host/kernels/kivi_quantize.h"
#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

using testing::RandomFloats;
using testing::RandomHalves;

struct Case {
  int bits, q_heads, kv_heads, head_dim, group;
  int64_t key_groups, key_residual, value_tokens, ring_capacity, ring_start;
};

class KiviAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(KiviAttentionTest, MatchesFloat64Reference) {
  const Case c = GetParam();
  std::mt19937 rng(c.bits * 31 + c.key_groups * 7 + c.key_residual);
  const int vg = std::min(c.group, c.head_dim);
  KiviLayout l{{c.q_heads, c.kv_heads, c.head_dim}, c.bits, c.group, vg};
  const int64_t row = c.kv_heads * c.head_dim;
  const int64_t total = c.key_groups * c.group + c.key_residual;
  const int64_t value_residual = total - c.value_tokens;
  ASSERT_GE(value_residual, 0);
  ASSERT_LE(value_residual, c.ring_capacity);

  auto kq_src = RandomHalves(c.key_groups * c.group * row, rng, 2.0f);
  auto k_res = RandomHalves(std::max<int64_t>(1, c.key_residual) * row, rng, 2.0f);
  auto vq_src = RandomHalves(std::max<int64_t>(1, c.value_tokens) * row, rng, 1.5f);
  auto ring = RandomHalves(c.ring_capacity * row, rng, 1.5f);
  std::vector<uint8_t> kcodes(std::max<int64_t>(1, c.key_groups * c.kv_heads * l.KeyGroupCodeBytes()));
  std::vector<Half> kscale(std::max<int64_t>(1, c.key_groups * row)), kzero(kscale.size());
  std::vector<uint8_t> vcodes(std::max<int64_t>(1, c.value_tokens * c.kv_heads * l.ValueTokenCodeBytes()));
  std::vector<Half> vscale(std::max<int64_t>(1, c.value_tokens * c.kv_heads * l.ValueGroups())), vzero(vscale.size());
  ASSERT_TRUE(KiviQuantizeKeys(l, kq_src.data(), row, c.key_groups, kcodes.data(), kscale.data(), kzero.data()).ok());
  ASSERT_TRUE(KiviQuantizeValues(l, vq_src.data(), row, c.value_tokens, vcodes.data(), vscale.data(), vzero.data()).ok());

  // What the cache represents, in float64: dequantized parts then residuals.
  std::vector<float> kdeq(c.key_groups * c.group * row), vdeq(c.value_tokens * row);
  ASSERT_TRUE(KiviDequantizeKeys(l, kcodes.data(), kscale.data(), kzero.data(), c.key_groups, kdeq.data()).ok());
  ASSERT_TRUE(KiviDequantizeValues(l, vcodes.data(), vscale.data(), vzero.data(), c.value_tokens, vdeq.data()).ok());
  std::vector<double> k(total * row), v(total * row);
  for (size_t i = 0; i < kdeq.size(); ++i) k[i] = kdeq[i];
  for (int64_t i = 0; i < c.key_residual * row; ++i) k[kdeq.size() + i] = HalfToFloat(k_res[i]);
  for (size_t i = 0; i < vdeq.size(); ++i) v[i] = vdeq[i];
  for (int64_t t = 0; t < value_residual; ++t) {
    const int64_t slot = (c.ring_start + t) % c.ring_capacity;
    for (int64_t e = 0; e < row; ++e) v[(c.value_tokens + t) * row + e] = HalfToFloat(ring[slot * row + e]);
  }
  auto q = RandomFloats(c.q_heads * c.head_dim, rng, 1.0f);

  KiviCacheView view;
  view.key_codes = kcodes.data();
  view.key_scale = kscale.data();
  view.key_zero = kzero.data();
  view.key_groups = c.key_groups;
  view.key_residual = k_res.data();
  view.key_residual_tokens = c.key_residual;
  view.value_codes = vcodes.data();
  view.value_scale = vscale.data();
  view.value_zero = vzero.data();
  view.value_tokens = c.value_tokens;
  view.value_residual = ring.data();
  view.value_residual_tokens = value_residual;
  view.value_ring_start = c.ring_start;
  view.value_ring_capacity = c.ring_capacity;
  std::vector<float> ws(KiviAttentionWorkspaceFloats(l, total));
  std::vector<float> out(c.q_heads * c.head_dim);
  ASSERT_TRUE(KiviDecodeAttention(l, view, q.data(), out.data(), ws).ok());
  const auto ref = testing::RefAttention(l.shape, q.data(), k, v, total);
  // fp32 accumulation over <= a few thousand terms plus the exp approximation (2e-7 relative).
  EXPECT_LT(testing::MaxRelError(out, ref), 2e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KiviAttentionTest,
    ::testing::Values(
        // bits, q, kv, d, group, key_groups, key_res, value_tokens, ring cap, ring start
        Case{2, 32, 8, 128, 32, 8, 77, 205, 128, 5},   // Llama-3.1-8B heads, ragged residual
        Case{1, 8, 2, 128, 64, 4, 0, 128, 128, 0},     // no key residual
        Case{2, 4, 4, 64, 32, 0, 19, 0, 32, 3},        // residual only
        Case{4, 12, 2, 96, 32, 5, 31, 63, 128, 100},   // group of 6 heads, ring wraps
        Case{8, 6, 3, 40, 8, 9, 5, 70, 8, 7},          // head_dim 40, value group 8
        Case{4, 5, 5, 16, 16, 3, 15, 60, 16, 15}));

TEST(KiviAttention, RejectsInconsistentViews) {
  KiviLayout l{{4, 2, 16}, 2, 16, 16};
  KiviCacheView v;
  std::vector<float> ws(1 << 16), out(64), q(64, 0.5f);
  EXPECT_FALSE(KiviDecodeAttention(l, v, q.data(), out.data(), ws).ok());  // no tokens
  std::vector<Half> res(16 * 32);
  v.key_residual = res.data();
  v.key_residual_tokens = 3;
  v.value_residual = res.data();
  v.value_residual_tokens = 2;  // K and V disagree
  v.value_ring_capacity = 4;
  EXPECT_FALSE(KiviDecodeAttention(l, v, q.data(), out.data(), ws).ok());
  v.value_residual_tokens = 3;
  EXPECT_TRUE(KiviDecodeAttention(l, v, q.data(), out.data(), ws).ok());
  EXPECT_FALSE(KiviDecodeAttention(l, v, q.data(), out.data(), std::span<float>(ws.data(), 4)).ok());
}

}  // namespace
}  // namespace kvt::kernels
