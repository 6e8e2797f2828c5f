// TaleCache::ReconstructKv (policies::InspectableCache): records back in token order, rebuilt from
// their truncated coefficients; exact at full rank, a known error when truncated.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "policies/lowrank/tale_cache.h"
#include "tests/unit/lowrank/sequence_fixture.h"
#include "tests/unit/lowrank/tale_options_fixture.h"

namespace kvt::policies::lowrank {
namespace {

using lowrank_test::Sequence;

using lowrank_test::FullRankTaleOptions;
using lowrank_test::Shape;

double RelFrobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

// Before calibration every token is exact: the reconstruction is the input, bit for bit.
TEST(TaleInspect, UncalibratedIsExact) {
  std::mt19937 rng(31);
  Sequence seq;
  seq.Build(rng, 2, 4, 8, 20);
  auto cache = TaleCache::Create(Shape(2, 4, 8), TaleOptions{});
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, 20)).ok());
  std::vector<float> k(seq.k.size()), v(seq.v.size());
  ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
  EXPECT_EQ(k, seq.k);
  EXPECT_EQ(v, seq.v);
}

// Full rank, float32 coefficients: B B^T x = x for an orthonormal B, so the reconstruction is the
// input up to float32 rounding (relative 1e-6), for both key bases, through prefill, Compress and
// decode (records evicted in several batches).
TEST(TaleInspect, FullRankReconstructsExactly) {
  std::mt19937 rng(32);
  for (auto basis : {TaleBasisKind::kPostRope, TaleBasisKind::kRopePairs}) {
    Sequence seq;
    seq.Build(rng, 4, 8, 8, 300);
    auto cache = TaleCache::Create(Shape(4, 8, 8), FullRankTaleOptions(basis));
    ASSERT_TRUE(cache.ok());
    ASSERT_TRUE((*cache)->Append(seq.Batch(0, 200)).ok());
    auto obs = lowrank_test::RandomVector(rng, 8 * 8 * 8);
    ASSERT_TRUE((*cache)->Compress({obs.data(), 8}).ok());
    for (int64_t t = 200; t < 300; ++t) ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
    ASSERT_GT((*cache)->stats().compressed_tokens, 4 * 250);
    std::vector<float> k(seq.k.size()), v(seq.v.size());
    ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
    EXPECT_LT(RelFrobenius(k, seq.k), 1e-6);
    EXPECT_LT(RelFrobenius(v, seq.v), 1e-6);
  }
}

// Truncated, with a known answer. head_dim 8, every compressed token at the lowest level (rank
// d/8 = 1; keys 2 with the RoPE-pair basis, which keeps pairs whole), float32 coefficients.
// k_t = 2 s_t e0 + r_t e2 and v_t = 2 s_t e0 + r_t e1 with s_t = (-1)^t, r_t = (-1)^(t/2): over a
// multiple of 4 tokens the cross terms cancel, so the key basis ranks pair (e0, e1) first and the
// value basis is e0 then e1. Truncation drops exactly r_t (energy 1 of 5) from each compressed
// token, so ||K'-K||_F / ||K||_F = ||V'-V||_F / ||V||_F = sqrt(C / (5 N)) for C compressed of N.
TEST(TaleInspect, TruncationLosesTheKnownEnergy) {
  const int kv = 2, d = 8, prompt = 64, total = 100;
  Sequence seq;
  seq.kv = kv;
  seq.q = 4;
  seq.d = d;
  seq.n = total;
  seq.k.assign(static_cast<size_t>(total) * kv * d, 0.0f);
  seq.v = seq.k;
  seq.k_pre = seq.k;
  seq.pos.resize(total);
  for (int t = 0; t < total; ++t) {
    seq.pos[t] = t;
    const float s = t % 2 == 0 ? 1.0f : -1.0f, r = (t / 2) % 2 == 0 ? 1.0f : -1.0f;
    for (int h = 0; h < kv; ++h) {
      const size_t o = (static_cast<size_t>(t) * kv + h) * d;
      seq.k[o + 0] = 2 * s;
      seq.k[o + 2] = r;
      seq.v[o + 0] = 2 * s;
      seq.v[o + 1] = r;
    }
  }
  TaleOptions o;
  o.window = 16;
  o.sinks = 0;
  o.fractions = {0.0f, 0.0f, 0.0f, 1.0f};
  o.key_bits = o.value_bits = {32, 32, 32, 32};
  auto cache = TaleCache::Create(Shape(kv, 4, d), o);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, prompt)).ok());
  std::vector<float> obs(4 * d, 0.5f);
  ASSERT_TRUE((*cache)->Compress({obs.data(), 1}).ok());
  for (int t = prompt; t < total; ++t) ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
  const auto st = (*cache)->stats();
  ASSERT_EQ(st.level_records[3], st.compressed_tokens) << "every record at the lowest level";
  const double compressed = static_cast<double>(st.compressed_tokens) / kv;
  ASSERT_GT(compressed, 0.0);
  std::vector<float> k(seq.k.size()), v(seq.v.size());
  ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
  const double want = std::sqrt(compressed / (5.0 * total));
  EXPECT_NEAR(RelFrobenius(k, seq.k), want, 1e-6);
  EXPECT_NEAR(RelFrobenius(v, seq.v), want, 1e-6);
}

// Mixed levels: the records of the four levels must come back to the tokens they were made from.
// With fp16 coefficients a record of token x at rank r rebuilds x' = B_r c' where c' = B_r^T x up
// to fp16 rounding (|c'_j - c_j| <= 2^-11 |c_j|), so x - x' is orthogonal to x' up to that
// rounding: |<x - x', x'>| <= 2^-11 (1 + 2^-11) ||x||^2 (checked with 1e-3). A record put back at
// another token u would give <x_u - x', x'>, which is of the order of ||x||^2.
TEST(TaleInspect, MixedLevelsMapBackToTheirTokens) {
  std::mt19937 rng(33);
  Sequence seq;
  seq.Build(rng, 2, 4, 16, 400);
  TaleOptions o;
  o.window = 16;
  o.fractions = {0.25f, 0.25f, 0.25f, 0.25f};
  o.key_bits = o.value_bits = {16, 16, 16, 16};
  auto cache = TaleCache::Create(Shape(2, 4, 16), o);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, 200)).ok());
  auto obs = lowrank_test::RandomVector(rng, 16 * 4 * 16);
  ASSERT_TRUE((*cache)->Compress({obs.data(), 16}).ok());
  for (int64_t t = 200; t < 400; ++t) {
    ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
    auto q = lowrank_test::RandomVector(rng, 4 * 16);
    std::vector<float> out(4 * 16);
    ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
  }
  const auto st = (*cache)->stats();
  for (int l = 0; l < 4; ++l) ASSERT_GT(st.level_records[l], 0) << "level " << l;
  std::vector<float> k(seq.k.size()), v(seq.v.size());
  ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
  const size_t d = 16;
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<float>& got = pass == 0 ? k : v;
    const std::vector<float>& want = pass == 0 ? seq.k : seq.v;
    for (size_t r = 0; r < want.size() / d; ++r) {
      double cross = 0.0, norm = 0.0;
      for (size_t i = 0; i < d; ++i) {
        const double x = want[r * d + i], y = got[r * d + i];
        cross += (x - y) * y;
        norm += x * x;
      }
      ASSERT_LE(std::fabs(cross), 1e-3 * norm + 1e-9) << (pass == 0 ? "K" : "V") << " row " << r;
    }
    // Truncation loses something, and the fixture's decaying spectrum keeps most of it.
    EXPECT_GT(RelFrobenius(got, want), 1e-3);
    EXPECT_LT(RelFrobenius(got, want), 0.7);
  }
}

}  // namespace
}  // namespace kvt::policies::lowrank
