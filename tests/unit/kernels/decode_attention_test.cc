// Segmented decode attention (fp16 and fp32) vs a float64 reference.
#include "host/kernels/decode_attention.h"

#include <gtest/gtest.h>

#include <vector>

#include "host/kernels/convert.h"
#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

struct Case {
  int q_heads, kv_heads, head_dim;
  int64_t a, b;  // tokens in a token-major segment and a head-major one
};

class DecodeAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeAttentionTest, HalfSegmentsMatchReference) {
  const Case c = GetParam();
  std::mt19937 rng(c.a * 13 + c.b);
  AttentionShape s{c.q_heads, c.kv_heads, c.head_dim};
  const int d = c.head_dim, row = c.kv_heads * d;
  auto ka = testing::RandomHalves(c.a * row, rng, 2.0f), va = testing::RandomHalves(c.a * row, rng);
  auto kb = testing::RandomHalves(c.b * row, rng, 2.0f), vb = testing::RandomHalves(c.b * row, rng);
  auto q = testing::RandomFloats(c.q_heads * d, rng);
  // Reference cache: segment a (token-major) then segment b (head-major [kv][b][d]).
  std::vector<double> k((c.a + c.b) * row), v(k.size());
  for (int64_t i = 0; i < c.a * row; ++i) k[i] = HalfToFloat(ka[i]), v[i] = HalfToFloat(va[i]);
  for (int h = 0; h < c.kv_heads; ++h) {
    for (int64_t t = 0; t < c.b; ++t) {
      for (int e = 0; e < d; ++e) {
        k[(c.a + t) * row + h * d + e] = HalfToFloat(kb[(h * c.b + t) * d + e]);
        v[(c.a + t) * row + h * d + e] = HalfToFloat(vb[(h * c.b + t) * d + e]);
      }
    }
  }
  KvSegment<Half> segs[2] = {{ka.data(), va.data(), c.a, row, d}, {kb.data(), vb.data(), c.b, d, c.b * d}};
  std::vector<float> ws(DecodeAttentionWorkspaceFloats(s, c.a + c.b)), out(c.q_heads * d);
  ASSERT_TRUE(DecodeAttention(s, std::span<const KvSegment<Half>>(segs, 2), q.data(), out.data(), ws).ok());
  EXPECT_LT(testing::MaxRelError(out, testing::RefAttention(s, q.data(), k, v, c.a + c.b)), 2e-5);

  // The float32 path over the same numbers gives the same answer.
  std::vector<float> kaf(ka.size()), vaf(va.size()), kbf(kb.size()), vbf(vb.size());
  ConvertToFloat(ka.data(), kaf.data(), ka.size());
  ConvertToFloat(va.data(), vaf.data(), va.size());
  ConvertToFloat(kb.data(), kbf.data(), kb.size());
  ConvertToFloat(vb.data(), vbf.data(), vb.size());
  KvSegment<float> fsegs[2] = {{kaf.data(), vaf.data(), c.a, row, d}, {kbf.data(), vbf.data(), c.b, d, c.b * d}};
  std::vector<float> out32(out.size());
  ASSERT_TRUE(DecodeAttention(s, std::span<const KvSegment<float>>(fsegs, 2), q.data(), out32.data(), ws).ok());
  EXPECT_LT(testing::MaxRelError(out32, out), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DecodeAttentionTest,
                         ::testing::Values(Case{32, 8, 128, 1000, 129}, Case{4, 4, 64, 1, 0},
                                           Case{6, 1, 40, 33, 7}, Case{10, 2, 8, 0, 5},
                                           Case{9, 3, 24, 517, 3}));

TEST(DecodeAttention, Errors) {
  AttentionShape s{4, 2, 16};
  std::vector<float> ws(1024), q(64), out(64);
  EXPECT_FALSE(DecodeAttention(s, std::span<const KvSegment<Half>>(), q.data(), out.data(), ws).ok());
  EXPECT_FALSE(DecodeAttention(AttentionShape{3, 2, 16}, std::span<const KvSegment<Half>>(), q.data(), out.data(), ws).ok());
  EXPECT_FALSE(DecodeAttention(AttentionShape{4, 2, 12}, std::span<const KvSegment<Half>>(), q.data(), out.data(), ws).ok());
  KvSegment<Half> seg{nullptr, nullptr, 3, 32, 16};
  EXPECT_FALSE(DecodeAttention(s, std::span<const KvSegment<Half>>(&seg, 1), q.data(), out.data(), ws).ok());
}

}  // namespace
}  // namespace kvt::kernels
