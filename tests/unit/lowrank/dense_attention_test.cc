#include "host/kernels/lowrank/dense_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "host/kernels/lowrank/internal/fast_math.h"
#include "host/kernels/lowrank/internal/half_bits.h"
#include "tests/unit/lowrank/reference.h"

namespace kvt::kernels::lowrank {
namespace {

// A NaN score (a corrupt cache: fuzzing a suspend image found it) weighs like -87, never an
// undefined float-to-int conversion; the clamps and the accuracy above -87 are unchanged.
TEST(FastExp, NanWeighsNothingAndTheRangeIsUnchanged) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isfinite(internal::FastExp(nan)));
  EXPECT_EQ(internal::FastExp(nan), internal::FastExp(-87.0f));
  EXPECT_LT(internal::FastExp(-1000.0f), 1e-37f);
  for (float x : {-80.0f, -10.0f, -1.0f, -0.25f, 0.0f}) EXPECT_NEAR(internal::FastExp(x) / std::exp(x), 1.0f, 2e-7f) << x;
}

// Float: ragged per-head lengths, float64 reference, tolerance 2e-5 (float32 sums, FastExp).
// fp16: the reference uses the fp16-rounded K/V, so the tolerance is the same.
TEST(DenseAttention, MatchesFloat64Reference) {
  std::mt19937 rng(7);
  struct Case { int kv, q, d; int64_t cap; };
  for (const Case c : {Case{1, 1, 8, 17}, Case{4, 8, 8, 100}, Case{3, 12, 20, 51}, Case{2, 4, 128, 77}}) {
    DenseAttentionShape s{c.kv, c.q, c.d, c.cap, 0.0f};
    auto keys = lowrank_test::RandomVector(rng, static_cast<size_t>(c.kv) * c.cap * c.d, 2.0f);
    auto values = lowrank_test::RandomVector(rng, keys.size());
    auto query = lowrank_test::RandomVector(rng, static_cast<size_t>(c.q) * c.d);
    std::vector<int64_t> tokens(c.kv);
    std::uniform_int_distribution<int64_t> u(1, c.cap);
    for (auto& t : tokens) t = u(rng);
    std::vector<uint16_t> hk(keys.size()), hv(keys.size());
    std::vector<float> rk(keys.size()), rv(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      hk[i] = internal::FloatToHalfBits(keys[i]);
      hv[i] = internal::FloatToHalfBits(values[i]);
      rk[i] = internal::HalfBitsToFloat(hk[i]);
      rv[i] = internal::HalfBitsToFloat(hv[i]);
    }
    std::vector<uint8_t> ws(DenseAttentionWorkspaceBytes(s));
    std::vector<float> out(static_cast<size_t>(c.q) * c.d), out16(out.size());
    ASSERT_TRUE(DenseAttention(s, keys.data(), values.data(), tokens.data(), query.data(), out.data(),
                               ws.data(), ws.size()).ok());
    ASSERT_TRUE(DenseAttentionF16(s, hk.data(), hv.data(), tokens[0], query.data(), out16.data(),
                                  ws.data(), ws.size()).ok());
    const int group = c.q / c.kv;
    for (int h = 0; h < c.kv; ++h) {
      for (int pass = 0; pass < 2; ++pass) {
        const std::vector<float>& K = pass == 0 ? keys : rk;
        const std::vector<float>& V = pass == 0 ? values : rv;
        const int64_t n = pass == 0 ? tokens[h] : tokens[0];
        std::vector<std::vector<double>> kk, vv;
        for (int64_t t = 0; t < n; ++t) {
          const size_t o = (static_cast<size_t>(h) * c.cap + t) * c.d;
          kk.emplace_back(K.begin() + o, K.begin() + o + c.d);
          vv.emplace_back(V.begin() + o, V.begin() + o + c.d);
        }
        for (int g = 0; g < group; ++g) {
          const size_t qo = static_cast<size_t>(h * group + g) * c.d;
          auto ref = lowrank_test::RefAttention(kk, vv, query.data() + qo, c.d, 1.0 / std::sqrt(double(c.d)));
          const float* got = (pass == 0 ? out : out16).data() + qo;
          EXPECT_LT(lowrank_test::RelMaxError(got, ref), 2e-5) << "pass " << pass << " d=" << c.d;
        }
      }
    }
  }
}

TEST(DenseAttention, RejectsBadArguments) {
  DenseAttentionShape s{2, 3, 8, 4, 0.0f};
  std::vector<float> k(64), q(24), o(24);
  std::vector<int64_t> t = {1, 1};
  std::vector<uint8_t> ws(1024);
  EXPECT_FALSE(DenseAttention(s, k.data(), k.data(), t.data(), q.data(), o.data(), ws.data(), ws.size()).ok());
  s.num_q_heads = 4;
  t[1] = 5;
  EXPECT_FALSE(DenseAttention(s, k.data(), k.data(), t.data(), q.data(), o.data(), ws.data(), ws.size()).ok());
}

}  // namespace
}  // namespace kvt::kernels::lowrank
