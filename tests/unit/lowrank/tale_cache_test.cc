#include "policies/lowrank/tale_cache.h"

#include <gtest/gtest.h>

#include <random>

#include "policies/registry.h"
#include "tests/unit/lowrank/sequence_fixture.h"
#include "tests/unit/lowrank/tale_options_fixture.h"

namespace kvt::policies::lowrank {
namespace {

using lowrank_test::Sequence;

using lowrank_test::FullRankTaleOptions;
using lowrank_test::Shape;

// Every token at full rank with float32 coefficients: the basis is orthonormal, so TALE is exact
// attention up to float32 rounding (tolerance 1e-4), through prefill, Compress and decode.
TEST(TaleCache, FullRankEqualsExactAttention) {
  std::mt19937 rng(1);
  for (auto basis : {TaleBasisKind::kPostRope, TaleBasisKind::kRopePairs}) {
    Sequence seq;
    seq.Build(rng, 4, 8, 8, 300);
    auto cache = TaleCache::Create(Shape(4, 8, 8), FullRankTaleOptions(basis));
    ASSERT_TRUE(cache.ok());
    ASSERT_TRUE((*cache)->Append(seq.Batch(0, 200)).ok());
    auto obs = lowrank_test::RandomVector(rng, 8 * 8 * 8);
    ASSERT_TRUE((*cache)->Compress({obs.data(), 8}).ok());
    EXPECT_TRUE((*cache)->calibrated());
    std::vector<float> out(64);
    for (int64_t t = 200; t < 300; ++t) {
      ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
      auto q = lowrank_test::RandomVector(rng, 64);
      ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
      EXPECT_LT(lowrank_test::RelMaxError(out.data(), seq.Exact(q.data(), t + 1)), 1e-4) << t;
    }
    auto st = (*cache)->stats();
    EXPECT_GT(st.compressed_tokens, 0);
    EXPECT_DOUBLE_EQ(st.avg_rank, 8.0);
    EXPECT_EQ((*cache)->tokens(), 300);
  }
}

// Default settings: levels follow the fractions, and the exact bits per element of the records
// match the layout (d = 128: full 5.5 b, d/2 ~3.4, d/4 2.25, d/8 1.125; 10/20/30/40% mix).
TEST(TaleCache, DefaultLevelsAndBits) {
  std::mt19937 rng(2);
  Sequence seq;
  seq.Build(rng, 2, 4, 128, 1100);
  TaleOptions o;  // window 64, sinks 4, 10/20/30/40, 8-8-4-4
  auto cache = TaleCache::Create(Shape(2, 4, 128), o);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, 1100)).ok());
  auto obs = lowrank_test::RandomVector(rng, 16 * 4 * 128);
  ASSERT_TRUE((*cache)->Compress({obs.data(), 16}).ok());
  const auto st = (*cache)->stats();
  ASSERT_EQ(st.compressed_tokens, 2 * (1100 - 64));
  // Sinks (4 per head) are full rank; the rest split 10/20/30/40 (quantile ties aside).
  const double n = static_cast<double>(st.compressed_tokens);
  EXPECT_NEAR(st.level_records[0] / n, 0.1, 0.02);
  EXPECT_NEAR(st.level_records[1] / n, 0.2, 0.02);
  EXPECT_NEAR(st.level_records[2] / n, 0.3, 0.02);
  EXPECT_NEAR(st.level_records[3] / n, 0.4, 0.02);
  double bits = 0.0;
  const double per_level[4] = {(8 + 16 + 16 + 16 + 32) * 8.0 / 128, (6 + 48) * 8.0 / 128, (4 + 32) * 8.0 / 128,
                               (2 + 16) * 8.0 / 128};
  for (int l = 0; l < 4; ++l) bits += per_level[l] * st.level_records[l];
  EXPECT_NEAR(st.compressed_bits_per_element, bits / n, 1e-9);
  EXPECT_NEAR(st.avg_rank, (128.0 * st.level_records[0] + 64.0 * st.level_records[1] + 32.0 * st.level_records[2] +
                            16.0 * st.level_records[3]) / n, 1e-9);
  std::vector<float> out(4 * 128);
  auto q = lowrank_test::RandomVector(rng, 4 * 128);
  ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
}

// Decode-only use (no Compress): exact until 2*window tokens, then calibrates and truncates.
TEST(TaleCache, CalibratesWithoutCompress) {
  std::mt19937 rng(4);
  Sequence seq;
  seq.Build(rng, 4, 8, 8, 100);
  TaleOptions o;
  o.window = 16;
  auto cache = TaleCache::Create(Shape(4, 8, 8), o);
  ASSERT_TRUE(cache.ok());
  std::vector<float> out(64);
  for (int64_t t = 0; t < 100; ++t) {
    ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
    auto q = lowrank_test::RandomVector(rng, 64);
    ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
    if (t < 32) {
      EXPECT_FALSE((*cache)->calibrated());
      EXPECT_LT(lowrank_test::RelMaxError(out.data(), seq.Exact(q.data(), t + 1)), 1e-5);
    }
  }
  EXPECT_TRUE((*cache)->calibrated());
  EXPECT_GT((*cache)->stats().compressed_tokens, 0);
  EXPECT_LT((*cache)->stored_bytes(), 100u * 4 * 8 * 2 * 4);
}

TEST(TaleCache, RejectsBadInput) {
  EXPECT_FALSE(TaleCache::Create(Shape(3, 4, 8), TaleOptions{}).ok());
  TaleOptions o;
  o.basis = TaleBasisKind::kPreRope;
  EXPECT_EQ(TaleCache::Create(Shape(2, 4, 8), o).status().code(), StatusCode::kUnsupported);
  o = TaleOptions{};
  o.fractions = {0.5f, 0.5f, 0.5f, 0.0f};
  EXPECT_FALSE(TaleCache::Create(Shape(2, 4, 8), o).ok());
  auto cache = TaleCache::Create(Shape(2, 4, 8), TaleOptions{});
  ASSERT_TRUE(cache.ok());
  std::vector<float> q(32), out(32);
  EXPECT_FALSE((*cache)->Attend(q.data(), out.data()).ok());  // empty
  AppendBatch bad;
  bad.tokens = 2;
  EXPECT_FALSE((*cache)->Append(bad).ok());
}

TEST(TaleCache, RegistrySpec) {
  LayerShape s = Shape(2, 4, 8);
  EXPECT_TRUE(MakeLayerCache("tale", s).ok());
  EXPECT_TRUE(MakeLayerCache("tale:window=32,basis=pairs,kbits=8-8-8-4,f0=0.2", s).ok());
  EXPECT_FALSE(MakeLayerCache("tale:kbits=8-8-4", s).ok());
  EXPECT_FALSE(MakeLayerCache("tale:basis=pre", s).ok());
  EXPECT_FALSE(MakeLayerCache("tale:f0=0.9,f1=0.9", s).ok());
  EXPECT_FALSE(MakeLayerCache("tale:bogus=1", s).ok());
}

}  // namespace
}  // namespace kvt::policies::lowrank
