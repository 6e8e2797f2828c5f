// tale and kvcompose layers in a sequence plan: the plan text, the layer driven through the
// Sequence against the same policies/lowrank cache driven directly (bit for bit: the same code
// path), Observe, Select's documented UNSUPPORTED, suspend/resume, and the GPU refusal, on fresh
// random inputs.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "policies/registry.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

constexpr int kQ = 8, kKv = 2, kD = 16, kPrompt = 40, kWindow = 4, kDecode = 12;

const char* kPlanText =
    "kvt-sequence-plan 1\n"
    "model method-test\n"
    "shape layers=3,q_heads=8,kv_heads=2,head_dim=16\n"
    "layer 0 tale window=8,sinks=2,kbits=8-8-4-4\n"
    "layer 1 kvcompose ratio=0.5,score=0.25\n"
    "layer 2 full\n";

std::vector<float> Random(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(MethodLayersPlan, TextRoundTrip) {
  auto plan = ParsePlan(kPlanText);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->layers[0].kind, LayerKind::kTale);
  EXPECT_EQ(plan->layers[0].method_params, "window=8,sinks=2,kbits=8-8-4-4");
  EXPECT_EQ(plan->layers[1].kind, LayerKind::kKvCompose);
  EXPECT_EQ(plan->layers[1].method_params, "ratio=0.5");
  EXPECT_FLOAT_EQ(plan->layers[1].score, 0.25f);
  EXPECT_EQ(MethodSpec(plan->layers[0]), "tale:window=8,sinks=2,kbits=8-8-4-4");
  EXPECT_EQ(MethodSpec(plan->layers[1]), "kvcompose:global=0,ratio=0.5");
  EXPECT_EQ(MethodSpec(plan->layers[2]), "");
  const std::string text = FormatPlan(*plan);
  auto back = ParsePlan(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(FormatPlan(*back), text);

  // No parameters, with and without a score.
  auto bare = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=2,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 tale\nlayer 1 kvcompose score=0.5\n");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ(FormatLayerSpec(bare->layers[0]), "tale");
  auto bare_back = ParsePlan(FormatPlan(*bare));
  ASSERT_TRUE(bare_back.ok()) << bare_back.status().ToString() << "\n" << FormatPlan(*bare);
  EXPECT_EQ(FormatPlan(*bare_back), FormatPlan(*bare));
  EXPECT_FLOAT_EQ(bare_back->layers[1].score, 0.5f);

  auto uniform = UniformPlan("tale:window=16", 2, {kQ, kKv, kD});
  ASSERT_TRUE(uniform.ok()) << uniform.status().ToString();
  EXPECT_EQ(uniform->layers[1].kind, LayerKind::kTale);
}

TEST(MethodLayersPlan, BadSpecsAreInvalidArgument) {
  for (const char* spec :
       {"tale:window=0", "tale:bogus=1", "tale:basis=magic", "tale:f0=0.9,f1=0.9",
        "kvcompose:ratio=2", "kvcompose:global=2", "kvcompose:structured=3"}) {
    auto l = ParseLayerSpec(spec);
    EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument)
        << spec << ": " << l.status().ToString();
  }
  EXPECT_TRUE(ParseLayerSpec("kvcompose:global=1").ok());  // the sequence's planner (kvcompose_global_test)
  // Checked against the plan's shape, naming the layer: the lowrank caches take head_dim <= 256.
  auto odd = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=2,q_heads=2,kv_heads=1,head_dim=512\n"
      "layer 0 full\nlayer 1 tale window=4\n");
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(odd.status().ToString().find("layer 1"), std::string::npos) << odd.status().ToString();
  auto typo = ParsePlan(
      "kvt-sequence-plan 1\nshape layers=1,q_heads=8,kv_heads=2,head_dim=16\n"
      "layer 0 tale windw=4\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().ToString().find("layer 0"), std::string::npos)
      << typo.status().ToString();
}

TEST(MethodLayersPlan, StatsSlots) {
  EXPECT_EQ(StatsSlot(LayerKind::kTale), static_cast<int>(LayerKind::kKivi));
  EXPECT_EQ(StatsSlot(LayerKind::kKvCompose), static_cast<int>(LayerKind::kFull));
  EXPECT_EQ(StatsSlot(LayerKind::kSparse), static_cast<int>(LayerKind::kSparse));
}

// The plan's layers driven through a Sequence and the same caches driven directly.
struct Pair {
  std::unique_ptr<Sequence> seq;
  std::vector<std::unique_ptr<policies::LayerCache>> direct;  // [layers]; null for layer 2 (full)
  std::mt19937 rng{2026};
  int64_t tokens = 0;

  void Open() {
    auto plan = ParsePlan(kPlanText);
    ASSERT_TRUE(plan.ok());
    auto s = Sequence::Open(*plan);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    seq = std::move(*s);
    for (int l = 0; l < 2; ++l) {
      policies::LayerShape shape;
      shape.layer = l;
      shape.num_layers = plan->num_layers();
      shape.num_q_heads = kQ;
      shape.num_kv_heads = kKv;
      shape.head_dim = kD;
      auto c = policies::MakeLayerCache(MethodSpec(plan->layers[static_cast<size_t>(l)]), shape);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      direct.push_back(std::move(*c));
    }
  }
  void Append(int n) {
    for (int l = 0; l < 3; ++l) {
      const auto k = Random(rng, static_cast<size_t>(n) * kKv * kD), v = Random(rng, k.size());
      ASSERT_TRUE(seq->Append(l, k.data(), v.data(), n).ok());
      if (l == 2) continue;
      std::vector<int32_t> pos(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(tokens + i);
      policies::AppendBatch b;
      b.keys = k.data();
      b.values = v.data();
      b.positions = pos.data();
      b.tokens = n;
      ASSERT_TRUE(direct[static_cast<size_t>(l)]->Append(b).ok());
    }
    tokens += n;
  }
  void Observe() {
    for (int l = 0; l < 3; ++l) {
      const auto q = Random(rng, static_cast<size_t>(kWindow) * kQ * kD);
      ASSERT_TRUE(seq->Observe(l, q.data(), kWindow).ok());
      if (l < 2) {
        ASSERT_TRUE(direct[static_cast<size_t>(l)]->Compress({q.data(), kWindow}).ok());
      }
    }
  }
  // Attends every layer with one fresh query; outputs of layers 0 and 1 bit-equal to the direct
  // caches.
  void AttendAndCompare(std::vector<float>* outs = nullptr) {
    for (int l = 0; l < 3; ++l) {
      const auto q = Random(rng, static_cast<size_t>(kQ) * kD);
      std::vector<float> got(q.size()), want(q.size());
      ASSERT_TRUE(seq->Attend(l, q.data(), got.data()).ok());
      if (outs) outs->insert(outs->end(), got.begin(), got.end());
      if (l == 2) continue;
      ASSERT_TRUE(direct[static_cast<size_t>(l)]->Attend(q.data(), want.data()).ok());
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << "layer " << l;
    }
  }
};

TEST(MethodLayers, BitEqualToTheCachesDrivenDirectly) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(kPrompt));
  ASSERT_NO_FATAL_FAILURE(p.Observe());
  // Observe reached the caches: KVCompose kept about half the prompt, TALE compressed tokens.
  EXPECT_LT(p.seq->kept_tokens(1), kPrompt);
  EXPECT_EQ(p.seq->kept_tokens(1), p.direct[1]->kept_tokens());
  EXPECT_EQ(p.seq->stored_bytes(0), p.direct[0]->stored_bytes());
  EXPECT_LT(p.seq->stored_bytes(0), static_cast<uint64_t>(kPrompt) * kKv * kD * 2 * sizeof(float));
  for (int step = 0; step < kDecode; ++step) {
    ASSERT_NO_FATAL_FAILURE(p.Append(1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  }
  EXPECT_EQ(p.seq->tokens(0), kPrompt + kDecode);
  EXPECT_EQ(p.seq->tokens(1), kPrompt + kDecode);
  EXPECT_EQ(p.seq->stored_bytes(0), p.direct[0]->stored_bytes());
  EXPECT_EQ(p.seq->stored_bytes(1), p.direct[1]->stored_bytes());
}

// Suspend / resume through bytes and through a file, at three points (exact before Observe,
// compressed after it, mid-decode): the resumed sequence goes on bit-equal to the direct caches
// (which were never suspended). A truncated or bit-flipped image is CORRUPTION or INVALID_ARGUMENT
// and leaves the sequence suspended and resumable.
TEST(MethodLayers, SuspendResumeIsBitExact) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  auto round_trip = [&](bool to_file) {
    const int64_t tokens = p.seq->tokens(0);
    const uint64_t bytes0 = p.seq->stored_bytes(0), bytes1 = p.seq->stored_bytes(1);
    if (to_file) {
      const std::string path = (std::filesystem::temp_directory_path() /
                                ("kvt_method_layers_" + std::to_string(::getpid())))
                                   .string();
      ASSERT_TRUE(p.seq->SuspendToFile(path).ok());
      ASSERT_TRUE(p.seq->suspended());
      ASSERT_TRUE(p.seq->ResumeFromFile(path).ok());
      std::filesystem::remove(path);
    } else {
      auto image = p.seq->Suspend();
      ASSERT_TRUE(image.ok()) << image.status().ToString();
      ASSERT_TRUE(p.seq->suspended());
      // Every truncation fails cleanly (never a crash) and leaves the sequence suspended.
      for (size_t cut = 0; cut < image->size(); cut += 1 + image->size() / 97) {
        const Status s = p.seq->Resume(std::span<const uint8_t>(image->data(), cut));
        ASSERT_FALSE(s.ok()) << "cut " << cut;
        ASSERT_TRUE(p.seq->suspended());
      }
      // Flipped bytes: an error or a consistent state, never a crash (the file form adds a
      // checksum).
      for (size_t at = 16; at < image->size(); at += 1 + image->size() / 31) {
        std::vector<uint8_t> bad = *image;
        bad[at] ^= 0x5a;
        auto other = Sequence::Restore(bad);
        if (other.ok()) (void)(*other)->tokens(0);
      }
      ASSERT_TRUE(p.seq->Resume(*image).ok());
    }
    EXPECT_EQ(p.seq->tokens(0), tokens);
    EXPECT_EQ(p.seq->stored_bytes(0), bytes0);
    EXPECT_EQ(p.seq->stored_bytes(1), bytes1);
  };
  ASSERT_NO_FATAL_FAILURE(p.Append(kPrompt));
  ASSERT_NO_FATAL_FAILURE(round_trip(false));
  ASSERT_NO_FATAL_FAILURE(p.Observe());
  ASSERT_NO_FATAL_FAILURE(round_trip(false));
  for (int step = 0; step < kDecode; ++step) {
    ASSERT_NO_FATAL_FAILURE(p.Append(1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
    if (step == kDecode / 2) {
      ASSERT_NO_FATAL_FAILURE(round_trip(true));
    }
  }
  ASSERT_NO_FATAL_FAILURE(round_trip(false));
  ASSERT_NO_FATAL_FAILURE(p.Append(1));
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
}

// Never observed: TALE calibrates at the first Attend past 2*window tokens, inside a resumed
// sequence.
TEST(MethodLayers, ResumeBeforeCalibration) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(10));
  auto image = p.seq->Suspend();
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  auto restored = Sequence::Restore(*image);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  p.seq = std::move(*restored);
  ASSERT_NO_FATAL_FAILURE(p.Append(20));
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  ASSERT_NO_FATAL_FAILURE(p.Append(1));
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
}

TEST(MethodLayers, SelectAndObserveContracts) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(kPrompt));
  const auto q = Random(p.rng, static_cast<size_t>(kQ) * kD);
  for (int l = 0; l < 2; ++l) {
    auto sel = p.seq->Select(l, q.data());
    EXPECT_EQ(sel.status().code(), StatusCode::kUnsupported) << sel.status().ToString();
  }
  EXPECT_NE(p.seq->Select(0, q.data()).status().message().find("reconstruction-free"),
            std::string::npos);
  EXPECT_TRUE(p.seq->Select(2, q.data()).ok());
  EXPECT_EQ(p.seq->Observe(0, nullptr, kWindow).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.seq->Observe(0, q.data(), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.seq->Observe(3, q.data(), 1).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(p.seq->Observe(2, q.data(), 1).ok());  // a full layer ignores it
}

// A GPU sequence takes them (tests/gpu/sequence_methods_gpu_test.cc checks it against this CPU
// path); without a device or without CUDA it is the usual UNSUPPORTED, not a refusal of the kinds.
TEST(MethodLayers, GpuSequenceAcceptsThem) {
  auto plan = ParsePlan(kPlanText);
  ASSERT_TRUE(plan.ok());
  SequenceOptions o;
  o.cuda_device = 0;
  auto s = Sequence::Open(*plan, o);
  if (s.ok()) {
    EXPECT_TRUE((*s)->on_gpu());
    return;
  }
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(s.status().message().find("CPU path only"), std::string::npos) << s.status().ToString();
}

}  // namespace
}  // namespace kvt::sequence
