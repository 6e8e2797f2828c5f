#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sequence/planner.h"
#include "sequence/sequence_plan.h"

namespace kvt::sequence {
namespace {

TEST(SequencePlan, FormatParseRoundTrip) {
  SequencePlan p;
  p.model = "stories260K";
  p.q_heads = 8;
  p.kv_heads = 4;
  p.head_dim = 8;
  auto dense = ParseLayerSpec("kivi:bits=1,group=8,residual=32");
  auto sparse = ParseLayerSpec("sparse:budget=96,sinks=4,recent=32,channels=2,scorer=sketch,sketch_group=16");
  ASSERT_TRUE(dense.ok()) << dense.status().ToString();
  ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
  p.layers = {*dense, *sparse, *sparse};
  p.layers[0].score = 0.5f;
  p.layers[2].score = 0.125f;
  const std::string text = FormatPlan(p);
  auto back = ParsePlan(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(FormatPlan(*back), text);
  EXPECT_EQ(back->layers[1].scorer, Scorer::kSketch);
  EXPECT_EQ(back->layers[1].sketch_group, 16);
  EXPECT_EQ(back->layers[0].bits, 1);
}

TEST(SequencePlan, BadInputIsAnError) {
  EXPECT_FALSE(ParseLayerSpec("sparse:budget=10,sinks=4,recent=8").ok());  // sinks + recent >= budget
  EXPECT_FALSE(ParseLayerSpec("sparse:scorer=magic").ok());
  EXPECT_FALSE(ParseLayerSpec("kivi:bitz=2").ok());
  EXPECT_EQ(ParseLayerSpec("nonsense").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParsePlan("").ok());
  EXPECT_FALSE(ParsePlan("kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=4,head_dim=8\nlayer 0 full\n").ok());
  EXPECT_FALSE(ParsePlan("kvt-sequence-plan 1\nshape layers=1,q_heads=8,kv_heads=4,head_dim=8\nlayer 7 full\n").ok());
  EXPECT_FALSE(ParsePlan("kvt-sequence-plan 1\nshape layers=1,q_heads=8,kv_heads=3,head_dim=8\nlayer 0 full\n").ok());
  EXPECT_FALSE(ParsePlan("kvt-sequence-plan 1\nshape layers=1,q_heads=8,kv_heads=4,head_dim=8\nlayer 0 full\nlayer 0 full\n").ok());
  EXPECT_TRUE(ParsePlan("kvt-sequence-plan 1\n# c\nshape layers=1,q_heads=8,kv_heads=4,head_dim=8\nlayer 0 full # x\n").ok());
  EXPECT_FALSE(UniformPlan("sparse:channels=65", 1, {8, 4, 64}).ok());  // more channels than head_dim
}

// A layer whose queries match one key strongly is "sparse"; one with uniform attention is "dense".
TEST(Planner, ClassifiesConcentratedAndSpreadLayers) {
  const kernels::AttentionShape s{4, 2, 16};
  const int t = 256, w = 8;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> keys(t * s.kv_heads * s.head_dim), q(w * s.q_heads * s.head_dim);
  for (auto& x : keys) x = nd(rng);
  Planner planner("unit", 2, s, PlannerOptions{});
  // Layer 0: every query = 8 x the key of token 3 of its KV head -> concentrated.
  for (int i = 0; i < w; ++i) {
    for (int h = 0; h < s.q_heads; ++h) {
      for (int c = 0; c < s.head_dim; ++c) {
        q[(i * s.q_heads + h) * s.head_dim + c] = 8.0f * keys[(3 * s.kv_heads + h / 2) * s.head_dim + c];
      }
    }
  }
  ASSERT_TRUE(planner.Observe(0, q.data(), w, keys.data(), t).ok());
  // Layer 1: zero queries -> uniform attention.
  std::fill(q.begin(), q.end(), 0.0f);
  ASSERT_TRUE(planner.Observe(1, q.data(), w, keys.data(), t).ok());
  auto plan = planner.Build();
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->layers[0].kind, LayerKind::kSparse);
  EXPECT_EQ(plan->layers[1].kind, LayerKind::kKivi);
  EXPECT_GT(plan->layers[1].score, 0.2f);
  EXPECT_LT(plan->layers[0].score, 0.2f);
  Planner empty("unit", 2, s, PlannerOptions{});
  EXPECT_FALSE(empty.Build().ok());
  EXPECT_FALSE(empty.Observe(5, q.data(), w, keys.data(), t).ok());

  // The classes may become other methods: TALE for the dense layer, KVCompose for the sparse one.
  PlannerOptions methods;
  methods.dense = *ParseLayerSpec("tale:window=16");
  methods.sparse = *ParseLayerSpec("kvcompose:ratio=0.25");
  Planner other("unit", 2, s, methods);
  for (int layer = 0; layer < 2; ++layer) {
    for (int i = 0; i < w; ++i) {
      for (int h = 0; h < s.q_heads; ++h) {
        for (int c = 0; c < s.head_dim; ++c) {
          q[(i * s.q_heads + h) * s.head_dim + c] = layer == 0 ? 8.0f * keys[(3 * s.kv_heads + h / 2) * s.head_dim + c] : 0.0f;
        }
      }
    }
    ASSERT_TRUE(other.Observe(layer, q.data(), w, keys.data(), t).ok());
  }
  auto mixed = other.Build();
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  EXPECT_EQ(mixed->layers[0].kind, LayerKind::kKvCompose);
  EXPECT_EQ(mixed->layers[1].kind, LayerKind::kTale);
  EXPECT_EQ(MethodSpec(mixed->layers[1]), "tale:window=16");
  // A spec the plan cannot hold is refused at Build.
  PlannerOptions bad;
  bad.dense = *ParseLayerSpec("kivi:bits=2");
  bad.dense.bits = 3;
  Planner refused("unit", 2, s, bad);
  ASSERT_TRUE(refused.Observe(0, q.data(), w, keys.data(), t).ok());
  ASSERT_TRUE(refused.Observe(1, q.data(), w, keys.data(), t).ok());
  EXPECT_EQ(refused.Build().status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::sequence
