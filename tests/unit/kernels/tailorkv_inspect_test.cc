// TailorKV through policies::InspectableCache: a dense (KIVI) layer reconstructs K/V, a sparse
// layer reports exactly the tokens its last Attend read. Data are built so the answers are known.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "policies/inspectable_cache.h"
#include "policies/registry.h"

namespace kvt::policies {
namespace {

constexpr int kKv = 2, kQ = 4, kD = 8;
constexpr size_t kRow = static_cast<size_t>(kKv) * kD;

LayerShape Shape() {
  LayerShape s;
  s.num_kv_heads = kKv;
  s.num_q_heads = kQ;
  s.head_dim = kD;
  return s;
}

std::unique_ptr<LayerCache> Make(const std::string& spec) {
  auto c = MakeLayerCache(spec, Shape());
  EXPECT_TRUE(c.ok()) << spec << ": " << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

const InspectableCache& Inspect(const LayerCache& c) {
  const auto* i = dynamic_cast<const InspectableCache*>(&c);
  EXPECT_NE(i, nullptr) << c.name() << " must implement InspectableCache";
  static const InspectableCache kNone;
  return i ? *i : kNone;
}

Status Append(LayerCache& c, const std::vector<float>& k, const std::vector<float>& v, int first, int count) {
  std::vector<int32_t> pos(count);
  for (int i = 0; i < count; ++i) pos[i] = first + i;
  AppendBatch b;
  b.keys = k.data() + first * kRow;
  b.keys_pre_rope = b.keys;
  b.values = v.data() + first * kRow;
  b.positions = pos.data();
  b.tokens = count;
  return c.Append(b);
}

double RelFrobenius(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

// Values 0, 1 and 3 in every 8-element group (fp16-exact). 1-bit KIVI (asymmetric, min/max per
// group, round to nearest) maps 0 -> 0, 3 -> 3 and 1 -> 0: the four 1s of a group of energy 22
// each lose 1, so a quantized group's squared error is 4 of 22.
constexpr float kPattern[8] = {0, 3, 1, 1, 0, 3, 1, 1};

// keys[t][h][c] = pattern[t % 8] (key groups run over 8 tokens of one channel),
// values[t][h][c] = pattern[c] (value groups run over the 8 channels of one token).
void PatternKv(int tokens, std::vector<float>& k, std::vector<float>& v) {
  k.resize(tokens * kRow);
  v.resize(k.size());
  for (int t = 0; t < tokens; ++t) {
    for (size_t i = 0; i < kRow; ++i) {
      k[t * kRow + i] = kPattern[t % 8];
      v[t * kRow + i] = kPattern[i % kD];
    }
  }
}

// Dense layer (1-bit KIVI, group 8, fp16 residual window of 16). While every token sits in the
// residual windows the reconstruction is the input exactly; at 40 tokens the keys of the first 32
// (two full windows) and the values of the first 24 (all but the 16-token ring) are quantized, so
// ||K'-K||_F/||K||_F = sqrt(4*32 / (22*40)) and ||V'-V||_F/||V||_F = sqrt(4*24 / (22*40)).
TEST(TailorKvInspect, DenseLayerReconstructsKiviForm) {
  auto c = Make("tailorkv1:mode=dense,group=8,residual=16");
  ASSERT_NE(c, nullptr);
  std::vector<float> k, v;
  PatternKv(40, k, v);
  ASSERT_TRUE(Append(*c, k, v, 0, 12).ok());
  std::vector<float> rk(12 * kRow), rv(rk.size());
  ASSERT_TRUE(Inspect(*c).ReconstructKv(rk.data(), rv.data()));
  EXPECT_EQ(rk, std::vector<float>(k.begin(), k.begin() + rk.size()));
  EXPECT_EQ(rv, std::vector<float>(v.begin(), v.begin() + rv.size()));

  ASSERT_TRUE(Append(*c, k, v, 12, 28).ok());
  rk.assign(40 * kRow, -1.0f);
  rv.assign(rk.size(), -1.0f);
  ASSERT_TRUE(Inspect(*c).ReconstructKv(rk.data(), rv.data()));
  EXPECT_NEAR(RelFrobenius(rk, k), std::sqrt(4.0 * 32 / (22.0 * 40)), 1e-6);
  EXPECT_NEAR(RelFrobenius(rv, v), std::sqrt(4.0 * 24 / (22.0 * 40)), 1e-6);
  // A dense layer reads every token: it is not a selection.
  std::vector<float> q(kQ * kD, 0.1f), out(q.size());
  ASSERT_TRUE(c->Attend(q.data(), out.data()).ok());
  EXPECT_TRUE(Inspect(*c).SelectedTokens(0).empty());
}

// Sparse layer: 48-token prompt, budget 16 = 2 sinks + 4 recent + 10 gathered, all 8 channels
// critical (channels=128 scales to head_dim 8), so the gathered tokens are each head's top-10 by
// q.k: ten needles per head (keys 5 on every channel; every other prompt key is 0). The last
// Attend read sinks, that head's needles, the recent prompt tokens and the 3 generated tokens.
TEST(TailorKvInspect, SparseLayerReportsWhatItRead) {
  auto c = Make("tailorkv1:mode=sparse,budget=16,sinks=2,recent=4,channels=128");
  ASSERT_NE(c, nullptr);
  const int prompt = 48, total = 51;
  std::vector<float> k(total * kRow, 0.0f), v(k.size(), 0.5f);
  const std::vector<int64_t> needles[kKv] = {{3, 5, 9, 12, 17, 20, 26, 31, 38, 43},
                                             {2, 4, 8, 11, 15, 22, 29, 30, 37, 40}};
  for (int h = 0; h < kKv; ++h) {
    for (int64_t t : needles[h]) {
      for (int i = 0; i < kD; ++i) k[t * kRow + h * kD + i] = 5.0f;
    }
  }
  ASSERT_TRUE(Append(*c, k, v, 0, prompt).ok());
  std::vector<float> q(kQ * kD, 1.0f), out(q.size());
  ASSERT_TRUE(c->Compress({q.data(), 1}).ok());
  EXPECT_TRUE(Inspect(*c).SelectedTokens(0).empty()) << "no Attend yet";
  for (int t = prompt; t < total; ++t) {
    ASSERT_TRUE(Append(*c, k, v, t, 1).ok());
    ASSERT_TRUE(c->Attend(q.data(), out.data()).ok());
  }
  for (int h = 0; h < kKv; ++h) {
    std::vector<int64_t> want = {0, 1};
    want.insert(want.end(), needles[h].begin(), needles[h].end());
    for (int64_t t = prompt - 4; t < total; ++t) want.push_back(t);
    EXPECT_EQ(Inspect(*c).SelectedTokens(h), want) << "head " << h;
  }
  EXPECT_EQ(c->kept_tokens(), 2 + 10 + 4 + 3);
  EXPECT_TRUE(Inspect(*c).SelectedTokens(kKv).empty()) << "no such head";
  // A sparse layer keeps every token as fp16: nothing method-specific to reconstruct.
  std::vector<float> rk(total * kRow), rv(rk.size());
  EXPECT_FALSE(Inspect(*c).ReconstructKv(rk.data(), rv.data()));
}

// Full budget: a prompt within the budget is read whole (recall 1 by construction).
TEST(TailorKvInspect, PromptWithinBudgetReadsEveryToken) {
  auto c = Make("tailorkv2:mode=sparse,budget=16,sinks=2,recent=4");
  ASSERT_NE(c, nullptr);
  std::vector<float> k, v;
  PatternKv(14, k, v);
  ASSERT_TRUE(Append(*c, k, v, 0, 12).ok());
  std::vector<float> q(kQ * kD, 1.0f), out(q.size());
  ASSERT_TRUE(c->Compress({q.data(), 1}).ok());
  ASSERT_TRUE(Append(*c, k, v, 12, 2).ok());
  ASSERT_TRUE(c->Attend(q.data(), out.data()).ok());
  std::vector<int64_t> all(14);
  for (int64_t t = 0; t < 14; ++t) all[t] = t;
  for (int h = 0; h < kKv; ++h) EXPECT_EQ(Inspect(*c).SelectedTokens(h), all);
}

}  // namespace
}  // namespace kvt::policies
