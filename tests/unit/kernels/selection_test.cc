// Selection kernels: top-k (exact vs a sort), gather, TailorKV channels and approximate scores,
// Quest pages, SnapKV scores and the dense-preference score, each vs a naive reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "host/kernels/approx_scores.h"
#include "host/kernels/channel_select.h"
#include "host/kernels/dense_preference.h"
#include "host/kernels/gather_rows.h"
#include "host/kernels/quest_pages.h"
#include "host/kernels/snapkv_scores.h"
#include "host/kernels/topk.h"
#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

// Sort-based reference: the k largest, ties to the smaller index, returned in ascending index order.
std::vector<int32_t> RefTopK(const float* v, int64_t n, int64_t k) {
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

TEST(TopK, ExactAgainstSortWithTies) {
  std::mt19937 rng(5);
  for (int64_t n : {1, 7, 100, 1000, 65537}) {
    for (int64_t k : {int64_t{1}, std::min<int64_t>(n, 5), std::min<int64_t>(n, 128), n}) {
      const int64_t rows = 3, stride = n + 3;
      auto v = testing::RandomFloats(rows * stride, rng, 4.0f);
      // Coarse values force many ties.
      if (n > 50) for (auto& x : v) x = std::round(x * 4.0f) / 4.0f + (x > 0 ? 0.01f : -0.01f);
      std::vector<int32_t> out(rows * k);
      std::vector<uint32_t> ws(TopKWorkspaceWords(rows, n));
      ASSERT_TRUE(TopK(v.data(), rows, n, stride, k, out.data(), ws).ok());
      for (int64_t r = 0; r < rows; ++r) {
        const auto ref = RefTopK(v.data() + r * stride, n, k);
        ASSERT_EQ(std::vector<int32_t>(out.begin() + r * k, out.begin() + (r + 1) * k), ref)
            << "n " << n << " k " << k << " row " << r;
      }
    }
  }
  std::vector<int32_t> out(4);
  std::vector<uint32_t> ws(16);
  std::vector<float> v(8, 1.0f);
  EXPECT_FALSE(TopK(v.data(), 1, 8, 8, 9, out.data(), ws).ok());
  EXPECT_FALSE(TopK(v.data(), 1, 8, 8, 2, out.data(), std::span<uint32_t>(ws.data(), 2)).ok());
}

TEST(GatherRows, CopiesSelectedRowsHeadMajor) {
  std::mt19937 rng(9);
  const int kvh = 3, d = 24, tokens = 50, k = 7, stride = kvh * d + 8;
  auto src = testing::RandomHalves(tokens * stride, rng);
  std::vector<int32_t> idx(kvh * k);
  for (auto& i : idx) i = static_cast<int32_t>(rng() % tokens);
  std::vector<Half> dst(kvh * k * d);
  ASSERT_TRUE(GatherRows(src.data(), tokens, stride, kvh, d, idx.data(), k, dst.data()).ok());
  for (int h = 0; h < kvh; ++h) {
    for (int i = 0; i < k; ++i) {
      for (int c = 0; c < d; ++c) {
        ASSERT_EQ(dst[(h * k + i) * d + c].bits, src[idx[h * k + i] * stride + h * d + c].bits);
      }
    }
  }
  idx[4] = tokens;
  EXPECT_FALSE(GatherRows(src.data(), tokens, stride, kvh, d, idx.data(), k, dst.data()).ok());
  idx[4] = -1;
  EXPECT_FALSE(GatherRows(src.data(), tokens, stride, kvh, d, idx.data(), k, dst.data()).ok());
}

TEST(ChannelSelect, AbsMaxAndTopChannels) {
  std::mt19937 rng(11);
  AttentionShape s{8, 2, 32};
  const int row = s.kv_heads * s.head_dim, tokens = 37;
  auto keys = testing::RandomHalves(tokens * row, rng, 3.0f);
  std::vector<float> absmax(row, 0.0f);
  ASSERT_TRUE(KeyChannelAbsMax(s, keys.data(), 20, row, absmax.data()).ok());
  ASSERT_TRUE(KeyChannelAbsMax(s, keys.data() + 20 * row, tokens - 20, row, absmax.data()).ok());
  for (int e = 0; e < row; ++e) {
    float m = 0;
    for (int t = 0; t < tokens; ++t) m = std::max(m, std::fabs(HalfToFloat(keys[t * row + e])));
    ASSERT_EQ(absmax[e], m);
  }
  auto q = testing::RandomFloats(s.q_heads * s.head_dim, rng);
  const int ds = 5;
  std::vector<float> qhat(row);
  std::vector<int32_t> sel(s.kv_heads * ds);
  ASSERT_TRUE(TopChannels(s, q.data(), absmax.data(), ds, qhat.data(), sel.data()).ok());
  for (int h = 0; h < s.kv_heads; ++h) {
    std::vector<float> imp(s.head_dim);
    for (int c = 0; c < s.head_dim; ++c) {
      double m = 0;
      for (int j = 0; j < s.group(); ++j) m += q[(h * s.group() + j) * s.head_dim + c];
      m /= s.group();
      ASSERT_NEAR(qhat[h * s.head_dim + c], m, 1e-6);
      imp[c] = std::fabs(qhat[h * s.head_dim + c]) * absmax[h * s.head_dim + c];
    }
    ASSERT_EQ(std::vector<int32_t>(sel.begin() + h * ds, sel.begin() + (h + 1) * ds),
              RefTopK(imp.data(), s.head_dim, ds));
  }
}

TEST(ApproxScores, ChannelMajorAndTokenMajorAgreeWithReference) {
  std::mt19937 rng(13);
  const int kvh = 2, d = 32, tokens = 301, ds = 4;
  auto tm = testing::RandomHalves(tokens * kvh * d, rng, 2.0f);  // token-major
  std::vector<Half> cm(kvh * d * tokens);                         // channel-major
  for (int t = 0; t < tokens; ++t) {
    for (int e = 0; e < kvh * d; ++e) cm[e * tokens + t] = tm[t * kvh * d + e];
  }
  auto qhat = testing::RandomFloats(kvh * d, rng);
  std::vector<int32_t> sel = {1, 5, 17, 30, 0, 2, 9, 31};
  std::vector<float> a(kvh * tokens), b(kvh * tokens);
  ASSERT_TRUE(ApproxScores(kvh, d, qhat.data(), sel.data(), ds, {cm.data(), tokens, 1, d * tokens, tokens}, a.data(), tokens).ok());
  ASSERT_TRUE(ApproxScores(kvh, d, qhat.data(), sel.data(), ds, {tm.data(), tokens, kvh * d, d, 1}, b.data(), tokens).ok());
  for (int h = 0; h < kvh; ++h) {
    for (int t = 0; t < tokens; ++t) {
      double ref = 0;
      for (int i = 0; i < ds; ++i) {
        const int c = sel[h * ds + i];
        ref += static_cast<double>(qhat[h * d + c]) * HalfToFloat(tm[t * kvh * d + h * d + c]);
      }
      ASSERT_NEAR(a[h * tokens + t], ref, 1e-5);
      ASSERT_NEAR(b[h * tokens + t], ref, 1e-5);
    }
  }
}

TEST(QuestPages, MinMaxAndScores) {
  std::mt19937 rng(17);
  AttentionShape s{8, 2, 16};
  const int row = s.kv_heads * s.head_dim, page = 16, pages = 9;
  auto keys = testing::RandomHalves(pages * page * row, rng, 2.0f);
  std::vector<Half> mn(pages * row), mx(pages * row);
  ASSERT_TRUE(QuestPageMinMax(s, page, keys.data(), row, pages, mn.data(), mx.data()).ok());
  auto q = testing::RandomFloats(s.q_heads * s.head_dim, rng);
  std::vector<float> scores(s.kv_heads * pages);
  ASSERT_TRUE(QuestPageScores(s, q.data(), mn.data(), mx.data(), pages, scores.data()).ok());
  for (int p = 0; p < pages; ++p) {
    for (int h = 0; h < s.kv_heads; ++h) {
      double best = -INFINITY;
      for (int j = 0; j < s.group(); ++j) {
        double bound = 0;
        for (int c = 0; c < s.head_dim; ++c) {
          double lo = INFINITY, hi = -INFINITY;
          for (int t = 0; t < page; ++t) {
            const double x = HalfToFloat(keys[(p * page + t) * row + h * s.head_dim + c]);
            lo = std::min(lo, x);
            hi = std::max(hi, x);
          }
          ASSERT_EQ(HalfToFloat(mn[p * row + h * s.head_dim + c]), lo);
          ASSERT_EQ(HalfToFloat(mx[p * row + h * s.head_dim + c]), hi);
          const double qc = q[(h * s.group() + j) * s.head_dim + c];
          bound += std::max(qc * hi, qc * lo);
        }
        best = std::max(best, bound);
      }
      ASSERT_NEAR(scores[h * pages + p], best, 1e-5);
    }
  }
}

// Per (q head, obs query) softmax rows over the causal prefix, float64.
std::vector<std::vector<double>> RefObsProbs(const AttentionShape& s, const std::vector<float>& obs,
                                             int window, const std::vector<Half>& keys, int64_t tokens,
                                             int j) {
  const int d = s.head_dim, row = s.kv_heads * d, h = j / s.group();
  std::vector<std::vector<double>> rows;
  for (int i = 0; i < window; ++i) {
    const int64_t len = tokens - window + i + 1;
    std::vector<double> p(len);
    double m = -INFINITY;
    for (int64_t t = 0; t < len; ++t) {
      double acc = 0;
      for (int c = 0; c < d; ++c) acc += static_cast<double>(obs[(i * s.q_heads + j) * d + c]) * HalfToFloat(keys[t * row + h * d + c]);
      p[t] = acc / std::sqrt(static_cast<double>(d));
      m = std::max(m, p[t]);
    }
    double sum = 0;
    for (auto& x : p) sum += (x = std::exp(x - m));
    for (auto& x : p) x /= sum;
    rows.push_back(std::move(p));
  }
  return rows;
}

TEST(SnapKvScores, MatchesReference) {
  std::mt19937 rng(19);
  for (auto [s, window, tokens, pool] : {std::tuple{AttentionShape{8, 2, 32}, 5, int64_t{1100}, 7},
                                         std::tuple{AttentionShape{3, 3, 16}, 4, int64_t{9}, 1},
                                         std::tuple{AttentionShape{4, 1, 8}, 1, int64_t{530}, 3}}) {
    const int row = s.kv_heads * s.head_dim;
    auto keys = testing::RandomHalves(tokens * row, rng, 3.0f);
    auto obs = testing::RandomFloats(window * s.q_heads * s.head_dim, rng, 3.0f);
    const int64_t prefix = tokens - window;
    std::vector<float> scores(s.kv_heads * prefix), ws(SnapKvWorkspaceFloats(s, window, tokens));
    ASSERT_TRUE(SnapKvScores(s, obs.data(), window, keys.data(), tokens, row, pool, scores.data(), ws).ok());
    for (int h = 0; h < s.kv_heads; ++h) {
      std::vector<double> raw(prefix, 0.0);
      for (int j = h * s.group(); j < (h + 1) * s.group(); ++j) {
        for (const auto& p : RefObsProbs(s, obs, window, keys, tokens, j)) {
          for (int64_t t = 0; t < prefix; ++t) raw[t] += p[t] / s.group();
        }
      }
      for (int64_t t = 0; t < prefix; ++t) {
        double best = 0;
        for (int64_t u = std::max<int64_t>(0, t - pool / 2); u <= std::min(prefix - 1, t + pool / 2); ++u) best = std::max(best, raw[u]);
        ASSERT_NEAR(scores[h * prefix + t], best, 1e-5 * std::max(1.0, best)) << "h " << h << " t " << t;
      }
    }
  }
}

TEST(DensePreference, MatchesReference) {
  std::mt19937 rng(23);
  for (auto [s, window, tokens, frac] : {std::tuple{AttentionShape{8, 2, 32}, 6, int64_t{700}, 0.05f},
                                         std::tuple{AttentionShape{2, 1, 16}, 3, int64_t{3}, 0.5f},
                                         std::tuple{AttentionShape{6, 3, 8}, 9, int64_t{201}, 0.2f}}) {
    const int row = s.kv_heads * s.head_dim;
    auto keys = testing::RandomHalves(tokens * row, rng, 3.0f);
    auto obs = testing::RandomFloats(window * s.q_heads * s.head_dim, rng, 3.0f);
    std::vector<float> ws(DensePreferenceWorkspaceFloats(s, window, tokens));
    auto got = DensePreferenceScore(s, obs.data(), window, keys.data(), tokens, row, frac, ws);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    double acc = 0;
    for (int j = 0; j < s.q_heads; ++j) {
      for (auto p : RefObsProbs(s, obs, window, keys, tokens, j)) {
        const int64_t m = DensePreferenceTopCount(p.size(), frac);
        std::sort(p.begin(), p.end(), std::greater<double>());
        acc += 1.0 - std::accumulate(p.begin(), p.begin() + m, 0.0);
      }
    }
    EXPECT_NEAR(*got, acc / (s.q_heads * window), 1e-5);
  }
}

}  // namespace
}  // namespace kvt::kernels
