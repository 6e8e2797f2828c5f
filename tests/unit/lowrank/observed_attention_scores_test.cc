#include "host/kernels/lowrank/observed_attention_scores.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/lowrank/reference.h"

namespace kvt::kernels::lowrank {
namespace {

// Causal softmax of each observation query in float64, reduced (max or sum) over the window and
// averaged over the group; tolerance 1e-6 absolute on weights in [0, window].
TEST(ObservedAttentionScores, MatchesFloat64Reference) {
  std::mt19937 rng(9);
  struct Case { int kv, q, d; int64_t n; int w; };
  for (const Case c : {Case{1, 1, 8, 5, 5}, Case{4, 8, 8, 61, 8}, Case{3, 6, 20, 33, 1}, Case{2, 8, 64, 40, 16}}) {
    ObservedAttentionShape s{c.kv, c.q, c.d, c.n, c.w, 0.0f};
    auto keys = lowrank_test::RandomVector(rng, static_cast<size_t>(c.n) * c.kv * c.d, 2.0f);
    auto queries = lowrank_test::RandomVector(rng, static_cast<size_t>(c.w) * c.q * c.d);
    std::vector<uint8_t> ws(ObservedAttentionScoresWorkspaceBytes(s));
    for (auto reduce : {ObservationReduce::kMax, ObservationReduce::kSum}) {
      std::vector<float> got(static_cast<size_t>(c.kv) * c.n, NAN);
      ASSERT_TRUE(ObservedAttentionScores(s, keys.data(), queries.data(), reduce, got.data(), ws.data(), ws.size()).ok());
      const int group = c.q / c.kv;
      for (int h = 0; h < c.kv; ++h) {
        std::vector<double> want(c.n, 0.0);
        for (int g = 0; g < group; ++g) {
          std::vector<double> red(c.n, 0.0);
          for (int w = 0; w < c.w; ++w) {
            const float* q = queries.data() + (static_cast<size_t>(w) * c.q + h * group + g) * c.d;
            const int64_t vis = c.n - c.w + w + 1;
            std::vector<double> s2(vis);
            double m = -INFINITY, sum = 0.0;
            for (int64_t t = 0; t < vis; ++t) {
              double dot = 0.0;
              for (int i = 0; i < c.d; ++i) dot += q[i] * static_cast<double>(keys[(t * c.kv + h) * c.d + i]);
              s2[t] = dot / std::sqrt(double(c.d));
              m = std::max(m, s2[t]);
            }
            for (auto& x : s2) sum += (x = std::exp(x - m));
            for (int64_t t = 0; t < vis; ++t) {
              red[t] = reduce == ObservationReduce::kMax ? std::max(red[t], s2[t] / sum) : red[t] + s2[t] / sum;
            }
          }
          for (int64_t t = 0; t < c.n; ++t) want[t] += red[t] / group;
        }
        for (int64_t t = 0; t < c.n; ++t) EXPECT_NEAR(got[h * c.n + t], want[t], 1e-6);
      }
    }
  }
}

TEST(ObservedAttentionScores, RejectsWindowLongerThanCache) {
  ObservedAttentionShape s{1, 1, 8, 4, 5, 0.0f};
  std::vector<float> k(64), q(64), out(8);
  std::vector<uint8_t> ws(4096);
  EXPECT_EQ(ObservedAttentionScores(s, k.data(), q.data(), ObservationReduce::kMax, out.data(), ws.data(), ws.size()).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::kernels::lowrank
