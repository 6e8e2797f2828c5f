// TaleMirror / KvComposeMirror (sequence/internal/mirror_plan.h) on the CPU: a host "device"
// mirror built only from the plans' sizes and copies (grown buffers poisoned, as fresh device
// memory is garbage) is attended with the CPU kernels the caches use themselves, and must give
// the caches' own Attend bit for bit through prefill chunks, attention before calibration,
// Observe, decode with window flushes and level growth, a Load, and (KVCompose) per-head counts and
// a shared planner's pending plan. This is the logic the GPU layers execute on the device.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "host/kernels/lowrank/dense_attention.h"
#include "host/kernels/lowrank/tale_attention.h"
#include "sequence/internal/bytes.h"
#include "sequence/internal/mirror_plan.h"

namespace kvt::sequence::internal {
namespace {

namespace klr = kernels::lowrank;
using policies::lowrank::KvComposeCache;
using policies::lowrank::TaleCache;

constexpr int kQ = 8, kKv = 2, kD = 16;

struct HostMirror {
  std::vector<std::vector<uint8_t>> buffers;
  uint64_t copied = 0;  // bytes copied, all plans

  void Apply(const MirrorPlan& p) {
    buffers.resize(p.sizes.size());
    for (size_t b = 0; b < p.sizes.size(); ++b) {
      if (p.release[b] != 0) std::vector<uint8_t>().swap(buffers[b]);
      const size_t old = buffers[b].size();
      buffers[b].resize(p.sizes[b]);
      if (p.sizes[b] > old)
        std::memset(buffers[b].data() + old, 0xA5, p.sizes[b] - old);  // garbage
    }
    for (const MirrorCopy& c : p.copies) {
      ASSERT_LT(static_cast<size_t>(c.buffer), buffers.size());
      ASSERT_LE(c.offset + c.bytes, buffers[static_cast<size_t>(c.buffer)].size());
      std::memcpy(buffers[static_cast<size_t>(c.buffer)].data() + c.offset, c.src, c.bytes);
      copied += c.bytes;
    }
  }
  template <typename T>
  const T* at(int b) const {
    return reinterpret_cast<const T*>(buffers[static_cast<size_t>(b)].data());
  }
};

std::vector<float> Random(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

policies::LayerShape Shape(int layer = 0, int layers = 1) {
  policies::LayerShape s;
  s.layer = layer;
  s.num_layers = layers;
  s.num_q_heads = kQ;
  s.num_kv_heads = kKv;
  s.head_dim = kD;
  return s;
}

Status AppendTo(policies::LayerCache& c, const std::vector<float>& k, const std::vector<float>& v,
                int n) {
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(c.tokens() + i);
  policies::AppendBatch b;
  b.keys = k.data();
  b.values = v.data();
  b.positions = pos.data();
  b.tokens = n;
  return c.Append(b);
}

// The reference cache (its own Attend) and the mirrored one (the GPU layer's steps on the CPU).
struct TalePair {
  std::unique_ptr<TaleCache> ref, mir;
  TaleMirror tracker;
  MirrorPlan plan;
  HostMirror host;
  std::mt19937 rng{5};

  void Open() {
    policies::lowrank::TaleOptions o;
    o.window = 8;
    o.sinks = 2;
    auto a = TaleCache::Create(Shape(), o), b = TaleCache::Create(Shape(), o);
    ASSERT_TRUE(a.ok() && b.ok());
    ref = std::move(*a);
    mir = std::move(*b);
    Sync();
  }
  void Sync() {
    tracker.Plan(*mir, &plan);
    host.Apply(plan);
  }
  void Append(int n) {
    const auto k = Random(rng, static_cast<size_t>(n) * kKv * kD), v = Random(rng, k.size());
    ASSERT_TRUE(AppendTo(*ref, k, v, n).ok());
    ASSERT_TRUE(AppendTo(*mir, k, v, n).ok());
    Sync();
  }
  void Observe(int window) {
    const auto q = Random(rng, static_cast<size_t>(window) * kQ * kD);
    ASSERT_TRUE(ref->Compress({q.data(), window}).ok());
    ASSERT_TRUE(mir->Compress({q.data(), window}).ok());
    Sync();
  }
  void AttendAndCompare() {
    const auto q = Random(rng, static_cast<size_t>(kQ) * kD);
    std::vector<float> want(q.size()), got(q.size());
    ASSERT_TRUE(ref->Attend(q.data(), want.data()).ok());
    ASSERT_TRUE(mir->PrepareAttend().ok());
    Sync();
    klr::TaleAttentionArgs a = mir->AttentionView();
    a.key_basis = host.at<float>(TaleMirror::kKeyBasis);
    a.value_basis = host.at<float>(TaleMirror::kValueBasis);
    for (int l = 0; l < klr::kTaleLevels; ++l) {
      a.levels[l].key_records = host.at<uint8_t>(TaleMirror::kLevelKeys + 2 * l);
      a.levels[l].value_records = host.at<uint8_t>(TaleMirror::kLevelValues + 2 * l);
      a.levels[l].tokens = host.at<int32_t>(TaleMirror::kCounts) + l * kKv;
      a.levels[l].capacity = tracker.capacity(l);
    }
    a.window_keys = host.at<float>(TaleMirror::kWindowKeys);
    a.window_values = host.at<float>(TaleMirror::kWindowValues);
    a.query = q.data();
    a.out = got.data();
    std::vector<float> wa(static_cast<size_t>(kKv) * a.window_tokens);
    a.window_attention = wa.data();
    std::vector<uint8_t> ws(klr::TaleAttentionWorkspaceBytes(a));
    ASSERT_TRUE(klr::TaleAttention(a, ws.data(), ws.size()).ok());
    mir->AddWindowAttention(wa.data());
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
  }
  std::vector<uint8_t> Image(const TaleCache& c) {
    std::vector<uint8_t> bytes;
    ByteWriter w(&bytes);
    c.Save(w);
    return bytes;
  }
};

TEST(TaleMirror, HostMirrorAttendsBitEqualToTheCache) {
  TalePair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(3));
  ASSERT_NO_FATAL_FAILURE(p.Append(7));
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());  // exact, uncalibrated (10 <= 2 * window)
  ASSERT_NO_FATAL_FAILURE(p.Append(27));
  ASSERT_NO_FATAL_FAILURE(p.Observe(4));  // calibrates, compresses all but the window
  EXPECT_TRUE(p.mir->calibrated());
  for (int step = 0; step < 150; ++step) {  // window flushes; levels grow past 64 records
    ASSERT_NO_FATAL_FAILURE(p.Append(step % 7 == 3 ? 5 : 1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
    if (step == 60) {  // the mirrored cache Loads its own image into a fresh cache: mirror Reset
      const auto image = p.Image(*p.mir);
      policies::lowrank::TaleOptions o;
      o.window = 8;
      o.sinks = 2;
      auto fresh = TaleCache::Create(Shape(), o);
      ASSERT_TRUE(fresh.ok());
      ByteReader r(image);
      ASSERT_TRUE((*fresh)->Load(r).ok());
      p.mir = std::move(*fresh);
      p.tracker.Reset();
      ASSERT_NO_FATAL_FAILURE(p.Sync());
    }
  }
  EXPECT_EQ(p.Image(*p.mir), p.Image(*p.ref));
  // Incremental: far fewer bytes than re-copying the state at every sync.
  EXPECT_LT(p.host.copied, 40 * p.ref->stored_bytes());
}

TEST(TaleMirror, CalibratedAtTheFirstLongAttend) {
  TalePair p;
  ASSERT_NO_FATAL_FAILURE(p.Open());
  ASSERT_NO_FATAL_FAILURE(p.Append(600));  // > 2 * window: PrepareAttend calibrates and compresses
  // (and the mirror gives back its prompt-sized window buffers)
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  EXPECT_TRUE(p.mir->calibrated());
  for (int step = 0; step < 20; ++step) {
    ASSERT_NO_FATAL_FAILURE(p.Append(1));
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare());
  }
}

// KVCompose: a host mirror attended with the cache's own kernel (DenseAttentionF16 with per-head
// counts) equals the cache's Attend.
struct KvcPair {
  std::vector<std::unique_ptr<policies::LayerCache>> ref, mir;  // [layers]
  std::vector<KvComposeMirror> tracker;
  std::vector<HostMirror> host;
  MirrorPlan plan;
  std::mt19937 rng{9};

  void Open(int layers, bool structured) {
    policies::lowrank::KvComposeOptions o;
    o.ratio = 0.4f;
    o.structured = structured;
    auto a = policies::lowrank::MakeKvComposeCaches(Shape(0, layers), o);
    auto b = policies::lowrank::MakeKvComposeCaches(Shape(0, layers), o);
    ASSERT_TRUE(a.ok() && b.ok());
    ref = std::move(*a);
    mir = std::move(*b);
    tracker.resize(static_cast<size_t>(layers));
    host.resize(static_cast<size_t>(layers));
    for (int l = 0; l < layers; ++l) Sync(l);
  }
  KvComposeCache& M(int l) {
    return *static_cast<KvComposeCache*>(mir[static_cast<size_t>(l)].get());
  }
  void Sync(int l) {
    tracker[static_cast<size_t>(l)].Plan(M(l), kKv, kD, &plan);
    host[static_cast<size_t>(l)].Apply(plan);
  }
  void Append(int l, int n) {
    const auto k = Random(rng, static_cast<size_t>(n) * kKv * kD), v = Random(rng, k.size());
    ASSERT_TRUE(AppendTo(*ref[static_cast<size_t>(l)], k, v, n).ok());
    ASSERT_TRUE(AppendTo(M(l), k, v, n).ok());
    Sync(l);
  }
  void Observe(int l) {
    const auto q = Random(rng, static_cast<size_t>(4) * kQ * kD);
    ASSERT_TRUE(ref[static_cast<size_t>(l)]->Compress({q.data(), 4}).ok());
    ASSERT_TRUE(M(l).Compress({q.data(), 4}).ok());
    Sync(l);
    for (size_t i = 0; i < mir.size(); ++i) {  // the sequence settles every layer
      ASSERT_TRUE(M(static_cast<int>(i)).ApplyPendingPlan().ok());
      Sync(static_cast<int>(i));
    }
  }
  void AttendAndCompare(int l) {
    const auto q = Random(rng, static_cast<size_t>(kQ) * kD);
    std::vector<float> want(q.size()), got(q.size());
    ASSERT_TRUE(ref[static_cast<size_t>(l)]->Attend(q.data(), want.data()).ok());
    ASSERT_TRUE(M(l).ApplyPendingPlan().ok());
    Sync(l);
    const HostMirror& h = host[static_cast<size_t>(l)];
    klr::DenseAttentionShape s{kKv, kQ, kD, M(l).capacity(), 0.0f};
    std::vector<uint8_t> ws(klr::DenseAttentionWorkspaceBytes(s));
    ASSERT_TRUE(klr::DenseAttentionF16(s, h.at<uint16_t>(KvComposeMirror::kKeys),
                                       h.at<uint16_t>(KvComposeMirror::kValues),
                                       M(l).head_token_counts().data(), q.data(), got.data(),
                                       ws.data(), ws.size())
                    .ok());
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "layer " << l;
    ASSERT_EQ(M(l).kept_tokens(), ref[static_cast<size_t>(l)]->kept_tokens());
  }
};

void RunKvCompose(bool structured) {
  KvcPair p;
  ASSERT_NO_FATAL_FAILURE(p.Open(2, structured));
  for (int l = 0; l < 2; ++l) {
    ASSERT_NO_FATAL_FAILURE(p.Append(l, 30));
    ASSERT_NO_FATAL_FAILURE(p.Append(l, 41));  // growth past 64 slots
    ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare(l));
  }
  ASSERT_NO_FATAL_FAILURE(p.Observe(0));  // pending: layer 1 has not observed
  EXPECT_TRUE(p.M(0).plan_pending());
  ASSERT_NO_FATAL_FAILURE(p.Append(0, 1));
  ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare(0));
  ASSERT_NO_FATAL_FAILURE(p.Observe(1));  // decided: both apply (the mirror copies all again)
  EXPECT_FALSE(p.M(0).plan_pending());
  for (int step = 0; step < 80; ++step) {
    for (int l = 0; l < 2; ++l) {
      ASSERT_NO_FATAL_FAILURE(p.Append(l, 1));
      ASSERT_NO_FATAL_FAILURE(p.AttendAndCompare(l));
    }
    if (step == 30) {  // layer 1 Loads its own image into a fresh cache: mirror Reset
      std::vector<uint8_t> image;
      ByteWriter w(&image);
      ASSERT_TRUE(p.M(1).Save(w).ok());
      policies::lowrank::KvComposeOptions o;
      o.ratio = 0.4f;
      o.structured = structured;
      auto fresh = KvComposeCache::Create(Shape(1, 2), o, nullptr);
      ASSERT_TRUE(fresh.ok());
      ByteReader r(image);
      ASSERT_TRUE((*fresh)->Load(r).ok());
      p.mir[1] = std::move(*fresh);
      p.tracker[1].Reset();
      ASSERT_NO_FATAL_FAILURE(p.Sync(1));
    }
  }
  if (!structured) {
    const auto counts = p.M(0).head_token_counts();
    std::printf("layer 0 per-head kept: %lld %lld\n", static_cast<long long>(counts[0]),
                static_cast<long long>(counts[1]));
  }
}

TEST(KvComposeMirror, HostMirrorAttendsBitEqualToTheCache) { RunKvCompose(true); }
TEST(KvComposeMirror, PerHeadCountsHostMirrorAttendsBitEqualToTheCache) { RunKvCompose(false); }

}  // namespace
}  // namespace kvt::sequence::internal
