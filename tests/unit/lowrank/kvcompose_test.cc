#include <gtest/gtest.h>

#include <random>

#include "policies/lowrank/kvcompose_cache.h"
#include "policies/lowrank/kvcompose_planner.h"
#include "policies/registry.h"
#include "tests/unit/lowrank/sequence_fixture.h"

namespace kvt::policies::lowrank {
namespace {

LayerShape Shape(int layers, int kv, int q, int d) {
  LayerShape s;
  s.num_layers = layers;
  s.num_kv_heads = kv;
  s.num_q_heads = q;
  s.head_dim = d;
  return s;
}

// Prefill all layers (each its own generated K/V), compress with an observation, decode a few.
struct LayerRun {
  std::vector<lowrank_test::Sequence> seqs;
  std::vector<std::unique_ptr<LayerCache>> caches;
};

void Prefill(std::mt19937& rng, LayerRun& run, int prompt, int total, int window) {
  for (size_t l = 0; l < run.caches.size(); ++l) {
    ASSERT_TRUE(run.caches[l]->Append(run.seqs[l].Batch(0, prompt)).ok());
  }
  for (size_t l = 0; l < run.caches.size(); ++l) {
    const auto& s = run.seqs[l];
    auto obs = lowrank_test::RandomVector(rng, static_cast<size_t>(window) * s.q * s.d);
    ASSERT_TRUE(run.caches[l]->Compress({obs.data(), window}).ok());
  }
}

TEST(KvCompose, RatioOneEqualsFullAttentionOverFp16) {
  std::mt19937 rng(31);
  for (bool structured : {true, false}) {
    LayerRun run;
    const LayerShape shape = Shape(3, 2, 6, 8);
    auto caches = MakeKvComposeCaches(shape, {1.0f, structured});
    ASSERT_TRUE(caches.ok());
    run.caches = std::move(*caches);
    run.seqs.resize(3);
    for (auto& s : run.seqs) {
      s.Build(rng, 2, 6, 8, 90);
      s.RoundKvToHalf();  // the cache stores fp16: attend over exactly what it holds
    }
    Prefill(rng, run, 70, 90, 8);
    for (int64_t t = 70; t < 90; ++t) {
      for (size_t l = 0; l < 3; ++l) {
        ASSERT_TRUE(run.caches[l]->Append(run.seqs[l].Batch(t, 1)).ok());
        auto q = lowrank_test::RandomVector(rng, 48);
        std::vector<float> out(48);
        ASSERT_TRUE(run.caches[l]->Attend(q.data(), out.data()).ok());
        EXPECT_LT(lowrank_test::RelMaxError(out.data(), run.seqs[l].Exact(q.data(), t + 1)), 2e-5);
        EXPECT_EQ(run.caches[l]->kept_tokens(), t + 1);
      }
    }
  }
}

TEST(KvCompose, PerLayerCountsSumToTheBudget) {
  std::mt19937 rng(32);
  for (bool structured : {true, false}) {
    for (float ratio : {0.1f, 0.37f, 0.5f}) {
      LayerRun run;
      const int L = 5, kv = 4, prompt = 120;
      auto caches = MakeKvComposeCaches(Shape(L, kv, 8, 8), {ratio, structured});
      ASSERT_TRUE(caches.ok());
      run.caches = std::move(*caches);
      run.seqs.resize(L);
      for (auto& s : run.seqs) s.Build(rng, kv, 8, 8, prompt + 5);
      Prefill(rng, run, prompt, prompt, 16);
      int64_t kept = 0;
      for (auto& c : run.caches) {
        auto* kc = static_cast<KvComposeCache*>(c.get());
        std::vector<float> q = lowrank_test::RandomVector(rng, 64), out(64);
        ASSERT_TRUE(kc->Attend(q.data(), out.data()).ok());  // applies the plan
        ASSERT_TRUE(kc->plan_applied());
        const auto heads = kc->head_tokens();
        int64_t layer_kept = 0;
        for (int64_t n : heads) {
          layer_kept += n;
          if (structured) {
            EXPECT_EQ(n, heads[0]) << "composite tokens: same count in every head";
          }
        }
        // What is stored is the kept tokens' fp16 K and V and their int32 indices, nothing else.
        EXPECT_EQ(kc->stored_bytes(), static_cast<uint64_t>(layer_kept) * (2 * 8 * 2 + 4));
        for (int h = 0; h < kv; ++h) {
          const auto sel = kc->SelectedTokens(h);
          ASSERT_EQ(static_cast<int64_t>(sel.size()), heads[h]);
          for (size_t i = 1; i < sel.size(); ++i) EXPECT_LT(sel[i - 1], sel[i]) << "ascending, distinct";
          for (int64_t t : sel) EXPECT_TRUE(t >= 0 && t < prompt);
        }
        kept += layer_kept;
      }
      EXPECT_EQ(kept, std::llround(ratio * L * prompt) * kv) << "ratio " << ratio;
    }
  }
}

// The planner's rules on hand-made scores: layer 0 takes the max across layers, global top-n.
TEST(KvComposePlanner, GlobalTopNWithLayerZeroMax) {
  KvComposePlanner p(2, 1, 0.5f, true);
  // Layer 0 uniform-ish and low, layer 1 peaky: without the max rule layer 0 would get nothing.
  ASSERT_TRUE(p.Submit(0, {0.1f, 0.1f, 0.1f, 0.1f}, 4).ok());
  EXPECT_FALSE(p.ready());
  EXPECT_EQ(p.HeadCounts(0).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(p.Submit(1, {0.9f, 0.5f, 0.05f, 0.01f}, 4).ok());
  ASSERT_TRUE(p.ready());
  EXPECT_EQ(p.budget(), 4);
  // Composite: layer 0 -> max(0.1, layer1) = {0.9, 0.5, 0.1, 0.1}; layer 1 {0.9, 0.5, 0.05, 0.01}.
  // Top 4: 0.9 (l0), 0.9 (l1), 0.5 (l0), 0.5 (l1).
  EXPECT_EQ((*p.HeadCounts(0))[0], 2);
  EXPECT_EQ((*p.HeadCounts(1))[0], 2);
  EXPECT_FALSE(p.Submit(1, {0, 0, 0, 0}, 4).ok());
  EXPECT_FALSE(p.Submit(2, {0, 0, 0, 0}, 4).ok());
}

TEST(KvCompose, RegistryWiresAGlobalPlanner) {
  const LayerShape base = Shape(3, 2, 4, 8);
  std::vector<std::unique_ptr<LayerCache>> caches;
  for (int l = 0; l < 3; ++l) {
    LayerShape s = base;
    s.layer = l;
    auto c = MakeLayerCache("kvcompose:ratio=0.25", s);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    caches.push_back(std::move(*c));
  }
  LayerShape s = base;
  s.layer = 1;  // out of order: no planner hand-off
  EXPECT_FALSE(MakeLayerCache("kvcompose", s).ok());
  EXPECT_TRUE(MakeLayerCache("kvcompose:global=0", s).ok());
  EXPECT_FALSE(MakeLayerCache("kvcompose:ratio=0", s).ok());
  std::mt19937 rng(33);
  LayerRun run;
  run.caches = std::move(caches);
  run.seqs.resize(3);
  for (auto& q : run.seqs) q.Build(rng, 2, 4, 8, 64);
  Prefill(rng, run, 64, 64, 8);
  int64_t kept = 0;
  for (auto& c : run.caches) {
    std::vector<float> q = lowrank_test::RandomVector(rng, 32), out(32);
    ASSERT_TRUE(c->Attend(q.data(), out.data()).ok());
    kept += c->kept_tokens();
  }
  EXPECT_EQ(kept, 48);  // 0.25 * 3 layers * 64
}

}  // namespace
}  // namespace kvt::policies::lowrank
