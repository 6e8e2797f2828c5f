// KVCompose's cross-layer budget (global=1) in a sequence plan: the plan text, the consistency
// rule (one ratio), and a sequence whose global=1 kvcompose layers — mixed with other kinds —
// equal, bit for bit, the standalone caches built with one shared planner (MakeKvComposeCaches over
// just those layers) on the same random inputs; the budget spread across them sums exactly to
// round(ratio * prompt tokens over those layers); suspend is refused (sequence left live) while
// the plan is pending and bit-exact before the first and after the last Observe.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "policies/lowrank/kvcompose_cache.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

constexpr int kQ = 8, kKv = 2, kD = 16, kPrompt = 48, kWindow = 6, kDecode = 8;
// Layers 0, 2 and 4 share the budget; 1 is full, 3 tale; 5 kvcompose with its own budget.
constexpr int kLayers = 6;
constexpr int kGlobal[] = {0, 2, 4};

std::string PlanText(bool structured) {
  const std::string st = structured ? "1" : "0";
  return "kvt-sequence-plan 1\n"
         "shape layers=6,q_heads=8,kv_heads=2,head_dim=16\n"
         "layer 0 kvcompose global=1,ratio=0.4,structured=" +
         st +
         "\n"
         "layer 1 full\n"
         "layer 2 kvcompose ratio=0.4,global=1,structured=" +
         st +
         "\n"
         "layer 3 tale window=8,sinks=2\n"
         "layer 4 kvcompose global=1,structured=" +
         st +
         ",ratio=0.4\n"
         "layer 5 kvcompose ratio=0.4\n";
}

std::vector<float> Random(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng) * scale;
  return v;
}

TEST(KvComposeGlobalPlan, ParsesAndRoundTrips) {
  auto plan = ParsePlan(PlanText(true));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(KvComposeGlobal(plan->layers[0]));
  EXPECT_TRUE(KvComposeGlobal(plan->layers[2]));
  EXPECT_FALSE(KvComposeGlobal(plan->layers[3]));
  EXPECT_FALSE(KvComposeGlobal(plan->layers[5]));
  EXPECT_EQ(MethodSpec(plan->layers[0]), "kvcompose:global=1,ratio=0.4,structured=1");
  EXPECT_EQ(MethodSpec(plan->layers[5]), "kvcompose:global=0,ratio=0.4");
  auto back = ParsePlan(FormatPlan(*plan));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(FormatPlan(*back), FormatPlan(*plan));
  auto spec = ParseLayerSpec("kvcompose:global=1");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_TRUE(KvComposeGlobal(*spec));
  auto off = ParseLayerSpec("kvcompose:global=0,ratio=0.3");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(KvComposeGlobal(*off));
  EXPECT_EQ(MethodSpec(*off), "kvcompose:global=0,ratio=0.3");
  EXPECT_EQ(ParseLayerSpec("kvcompose:global=2").status().code(), StatusCode::kInvalidArgument);
}

TEST(KvComposeGlobalPlan, GlobalLayersMustShareOneRatio) {
  auto bad = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 kvcompose global=1,ratio=0.4\nlayer 1 kvcompose global=1,ratio=0.5\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().ToString().find("layer 1"), std::string::npos) << bad.status().ToString();
  auto bad_structured = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 kvcompose global=1\nlayer 1 kvcompose global=1,structured=0\n");
  EXPECT_EQ(bad_structured.status().code(), StatusCode::kInvalidArgument);
  // Per-layer budgets may differ, and may sit next to a global group.
  auto mixed = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=3,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 kvcompose global=1,ratio=0.4\nlayer 1 kvcompose ratio=0.9\nlayer 2 kvcompose "
      "ratio=0.2\n");
  EXPECT_TRUE(mixed.ok()) << mixed.status().ToString();
}

// The sequence and the standalone caches with one shared planner over the global layers.
struct Pair {
  bool structured = true;
  std::unique_ptr<Sequence> seq;
  std::vector<std::unique_ptr<policies::LayerCache>> direct;  // [3]: layers 0, 2, 4
  std::mt19937 rng{77};
  int64_t tokens = 0;

  void Open() {
    auto plan = ParsePlan(PlanText(structured));
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    auto s = Sequence::Open(*plan);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    seq = std::move(*s);
    policies::LayerShape shape;
    shape.num_layers = 3;
    shape.num_q_heads = kQ;
    shape.num_kv_heads = kKv;
    shape.head_dim = kD;
    policies::lowrank::KvComposeOptions o;
    o.ratio = 0.4f;
    o.structured = structured;
    auto caches = policies::lowrank::MakeKvComposeCaches(shape, o);
    ASSERT_TRUE(caches.ok()) << caches.status().ToString();
    direct = std::move(*caches);
  }
  static int Direct(int layer) { return layer / 2; }  // 0, 2, 4 -> 0, 1, 2
  static bool IsGlobal(int layer) { return layer == 0 || layer == 2 || layer == 4; }

  void Append(int n) {
    for (int l = 0; l < kLayers; ++l) {
      // Layer-dependent scales: the budget has something to spread unevenly.
      const auto k = Random(rng, static_cast<size_t>(n) * kKv * kD, 0.5f + 0.5f * l);
      const auto v = Random(rng, k.size());
      ASSERT_TRUE(seq->Append(l, k.data(), v.data(), n).ok());
      if (!IsGlobal(l)) continue;
      std::vector<int32_t> pos(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(tokens + i);
      policies::AppendBatch b;
      b.keys = k.data();
      b.values = v.data();
      b.positions = pos.data();
      b.tokens = n;
      ASSERT_TRUE(direct[static_cast<size_t>(Direct(l))]->Append(b).ok());
    }
    tokens += n;
  }
  void Observe(int layer) {
    const auto q = Random(rng, static_cast<size_t>(kWindow) * kQ * kD);
    ASSERT_TRUE(seq->Observe(layer, q.data(), kWindow).ok());
    if (IsGlobal(layer)) {
      ASSERT_TRUE(direct[static_cast<size_t>(Direct(layer))]->Compress({q.data(), kWindow}).ok());
    }
  }
  void AttendAndCompare() {
    for (int l = 0; l < kLayers; ++l) {
      const auto q = Random(rng, static_cast<size_t>(kQ) * kD);
      std::vector<float> got(q.size()), want(q.size());
      ASSERT_TRUE(seq->Attend(l, q.data(), got.data()).ok()) << "layer " << l;
      if (!IsGlobal(l)) continue;
      ASSERT_TRUE(direct[static_cast<size_t>(Direct(l))]->Attend(q.data(), want.data()).ok());
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << "layer " << l;
      ASSERT_EQ(seq->kept_tokens(l), direct[static_cast<size_t>(Direct(l))]->kept_tokens())
          << "layer " << l;
    }
  }
};

void RunEqualsSharedPlanner(bool structured) {
  Pair p;
  p.structured = structured;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(kPrompt));
  // Observed out of order; the plan is decided at the last global layer (4 here).
  for (int l : {2, 1, 3, 5, 0}) ASSERT_NO_FATAL_FAILURE(p.Observe(l));
  for (int l : kGlobal)
    EXPECT_EQ(p.seq->kept_tokens(l), kPrompt) << "exact until the last global layer observes";
  EXPECT_LT(p.seq->kept_tokens(5), kPrompt);  // its own budget applied at its Observe
  ASSERT_NO_FATAL_FAILURE(p.Observe(4));
  // The budget: round(0.4 * 3 * prompt) kept tokens over the three layers (per-head mean when
  // unstructured, so only approximately there).
  int64_t kept = 0;
  for (int l : kGlobal) kept += p.seq->kept_tokens(l);
  const int64_t budget = std::llround(0.4 * 3 * kPrompt);
  if (structured) {
    EXPECT_EQ(kept, budget);
  } else {
    EXPECT_NEAR(static_cast<double>(kept), static_cast<double>(budget), 3.0);
  }
  for (int step = 0; step < kDecode; ++step) {
    ASSERT_NO_FATAL_FAILURE(p.Append(1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  }
  std::printf("kept per global layer (structured=%d): %lld %lld %lld of %d\n", structured ? 1 : 0,
              static_cast<long long>(p.seq->kept_tokens(0) - kDecode),
              static_cast<long long>(p.seq->kept_tokens(2) - kDecode),
              static_cast<long long>(p.seq->kept_tokens(4) - kDecode), kPrompt);
}

TEST(KvComposeGlobal, EqualsStandaloneCachesWithASharedPlanner) { RunEqualsSharedPlanner(true); }
TEST(KvComposeGlobal, UnstructuredEqualsStandaloneCachesWithASharedPlanner) {
  RunEqualsSharedPlanner(false);
}

TEST(KvComposeGlobal, SuspendWhilePendingIsRefusedElseBitExact) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(kPrompt));
  // Before any Observe: an exact cache; the resumed sequence builds a fresh planner.
  {
    auto image = p.seq->Suspend();
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    auto restored = Sequence::Restore(*image);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    p.seq = std::move(*restored);
  }
  ASSERT_NO_FATAL_FAILURE(p.Observe(0));
  // Pending: refused, with the sequence live and unchanged.
  auto refused = p.seq->Suspend();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(refused.status().ToString().find("pending"), std::string::npos)
      << refused.status().ToString();
  EXPECT_FALSE(p.seq->suspended());
  for (int l : {1, 2, 3, 4, 5}) ASSERT_NO_FATAL_FAILURE(p.Observe(l));
  // Decided: suspend / resume is bit-exact and the sequence goes on equal to the direct caches.
  auto image = p.seq->Suspend();
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_TRUE(p.seq->Resume(*image).ok());
  auto again = p.seq->Suspend();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*again == *image);
  ASSERT_TRUE(p.seq->Resume(*again).ok());
  for (int step = 0; step < kDecode; ++step) {
    ASSERT_NO_FATAL_FAILURE(p.Append(1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  }
}

}  // namespace
}  // namespace kvt::sequence
