// SequenceOptions::host_memory (sequence/host_tier_memory.h): a sequence whose host tier comes from
// a given HostTierMemory computes bit for bit what one with the process-local default computes,
// holds exactly its host-tier arrays there (growth frees the old range back), gives everything back
// at Suspend and destruction, and fails an append its memory cannot hold with RESOURCE_EXHAUSTED,
// losing nothing. The client's shared heap behind this seam is tested in
// tests/integration/core/sequence_in_client_test.cc.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "sequence/host_tier_memory.h"
#include "sequence/internal/channel_major_host_tier.h"
#include "sequence/internal/host_tier_array.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

constexpr int kRow = 2 * 64, kQueryRow = 8 * 64;

// Aligned heap memory with a hard limit, counting what is live.
class LimitedMemory final : public HostTierMemory {
 public:
  explicit LimitedMemory(uint64_t limit) : limit_(limit) {}
  StatusOr<HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) override {
    KVT_RETURN_IF_ERROR(CheckHostTierRequest(bytes, alignment));
    std::lock_guard lock(mu_);
    if (used_ + bytes > limit_) return ResourceExhausted("test memory full");
    void* p = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    if (p == nullptr) return ResourceExhausted("aligned_alloc");
    used_ += bytes;
    ++live_;
    return HostTierRegion{p, nullptr, bytes, 0};
  }
  void Free(const HostTierRegion& r) override {
    std::lock_guard lock(mu_);
    used_ -= r.bytes;
    --live_;
    std::free(r.host);
  }
  bool device_mapped() const override { return false; }
  uint64_t used() const {
    std::lock_guard lock(mu_);
    return used_;
  }
  int live() const {
    std::lock_guard lock(mu_);
    return live_;
  }

 private:
  mutable std::mutex mu_;
  uint64_t limit_, used_ = 0;
  int live_ = 0;
};

SequencePlan Plan(const char* text) {
  auto p = ParsePlan(text);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return *p;
}

constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=5,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 full\n"
    "layer 1 offload\n"
    "layer 2 kivi bits=2,group=32,residual=64\n"
    "layer 3 sparse budget=96,sinks=4,recent=32,channels=8\n"
    "layer 4 sparse budget=96,sinks=4,recent=32,channels=8,scorer=sketch,sketch_bits=2,sketch_group=32\n";

std::vector<float> Random(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::unique_ptr<Sequence> OpenWith(const SequencePlan& plan, HostTierMemory* memory) {
  SequenceOptions o;
  o.host_memory = memory;
  auto s = Sequence::Open(plan, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

void ExpectSameAttention(Sequence& a, Sequence& b, int layer, const std::vector<float>& q) {
  std::vector<float> oa(kQueryRow), ob(kQueryRow, -1.0f);
  ASSERT_TRUE(a.Attend(layer, q.data(), oa.data()).ok());
  ASSERT_TRUE(b.Attend(layer, q.data(), ob.data()).ok());
  bool nonzero = false;
  for (float x : oa) nonzero |= x != 0.0f;
  EXPECT_TRUE(nonzero) << "layer " << layer;
  EXPECT_EQ(std::memcmp(oa.data(), ob.data(), oa.size() * sizeof(float)), 0) << "layer " << layer;
}

TEST(HostTierMemory, GivenMemoryHoldsTheHostTierAndAttendsBitForBit) {
  const SequencePlan plan = Plan(kPlan);
  LimitedMemory memory(1ull << 30);
  auto local = OpenWith(plan, nullptr);
  auto given = OpenWith(plan, &memory);
  ASSERT_TRUE(local && given);
  std::mt19937 rng(3);
  constexpr int kPrompt = 300, kSteps = 330;  // decode past a doubling of every array
  for (int l = 0; l < 5; ++l) {
    const auto k = Random(rng, kPrompt * kRow), v = Random(rng, kPrompt * kRow);
    ASSERT_TRUE(local->Append(l, k.data(), v.data(), kPrompt).ok());
    ASSERT_TRUE(given->Append(l, k.data(), v.data(), kPrompt).ok());
  }
  for (int step = 0; step < kSteps; ++step) {
    for (int l = 0; l < 5; ++l) {
      if (l + 1 < 5) {
        const auto hint = Random(rng, kQueryRow);
        ASSERT_TRUE(local->HintNext(l + 1, hint.data()).ok());
        ASSERT_TRUE(given->HintNext(l + 1, hint.data()).ok());
      }
      const auto k = Random(rng, kRow), v = Random(rng, kRow), q = Random(rng, kQueryRow);
      ASSERT_TRUE(local->Append(l, k.data(), v.data(), 1).ok());
      ASSERT_TRUE(given->Append(l, k.data(), v.data(), 1).ok());
      if (step % 16 == 0 || step == kSteps - 1) ExpectSameAttention(*local, *given, l, q);
    }
    if (HasFatalFailure()) return;
  }
  // Offload: K, V; each sparse layer: K, V and the transposed keys. Nothing else.
  EXPECT_EQ(memory.live(), 2 + 3 + 3);
  const uint64_t bytes = given->counters().host_bytes;
  EXPECT_EQ(bytes, local->counters().host_bytes);
  EXPECT_GE(memory.used(), bytes);
  EXPECT_LE(memory.used(), 2 * bytes);
  given.reset();
  EXPECT_EQ(memory.used(), 0u);
  EXPECT_EQ(memory.live(), 0);
}

TEST(HostTierMemory, FullMemoryFailsTheAppendAndLosesNothing) {
  const SequencePlan plan = Plan(
      "kvt-sequence-plan 1\n"
      "shape layers=2,q_heads=8,kv_heads=2,head_dim=64\n"
      "layer 0 offload\n"
      "layer 1 sparse budget=96,sinks=4,recent=32,channels=8\n");
  LimitedMemory memory(1 << 20);
  auto local = OpenWith(plan, nullptr);
  auto given = OpenWith(plan, &memory);
  ASSERT_TRUE(local && given);
  std::mt19937 rng(5);
  for (int l = 0; l < 2; ++l) {
    bool exhausted = false;
    for (int chunk = 0; chunk < 64 && !exhausted; ++chunk) {
      const auto k = Random(rng, 64 * kRow), v = Random(rng, 64 * kRow);
      const int64_t before = given->tokens(l);
      Status s = given->Append(l, k.data(), v.data(), 64);
      if (!s.ok()) {
        EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
        EXPECT_EQ(given->tokens(l), before);
        exhausted = true;
      } else {
        ASSERT_TRUE(local->Append(l, k.data(), v.data(), 64).ok());
      }
    }
    ASSERT_TRUE(exhausted) << "layer " << l;
    for (int i = 0; i < 3; ++i) ExpectSameAttention(*local, *given, l, Random(rng, kQueryRow));
    // The suspend image is the one of the sequence that holds the same tokens.
  }
  auto a = local->Suspend(), b = given->Suspend();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b);
  EXPECT_EQ(memory.used(), 0u);
}

TEST(HostTierArrayGrowth, StepsDoubleThenShrinkToWhatIsAsked) {
  using internal::GrowthSteps;
  EXPECT_EQ(GrowthSteps(10, 8), (std::vector<size_t>{16, 10}));
  EXPECT_EQ(GrowthSteps(9, 8), (std::vector<size_t>{16, 10, 9}));
  EXPECT_EQ(GrowthSteps(1024, 1000), (std::vector<size_t>{2000, 1250, 1062, 1024}));
  EXPECT_EQ(GrowthSteps(300, 0, 256), (std::vector<size_t>{337, 300})) << "a bulk append: an eighth more";
  EXPECT_EQ(GrowthSteps(5, 0, 256), (std::vector<size_t>{256, 5}));
  EXPECT_EQ(GrowthSteps(5000, 1000), (std::vector<size_t>{5625, 5000})) << "never below what is asked";
  EXPECT_EQ(GrowthSteps(1500, 1000), (std::vector<size_t>{2000, 1500})) << "doubling covers the eighth";
}

// Old and new ranges coexist while an array grows: with doubling alone an array in 700 elements'
// worth of memory stops at 256 (256 + 512 > 700); the smaller steps take it on to 350
// (349 + 350 <= 700 < 350 + 351), and the append that cannot fit changes nothing.
TEST(HostTierArrayGrowth, ANearlyFullMemoryStillGrowsAndAFailedGrowthKeepsTheContents) {
  LimitedMemory memory(700 * sizeof(uint32_t));
  internal::HostTierArray<uint32_t> array(&memory);
  Status s;
  for (uint32_t i = 0; s.ok(); ++i) {
    s = array.Append(&i, 1);
    if (s.ok()) {
      EXPECT_EQ(memory.live(), 1) << "the old range goes back after each growth";
      EXPECT_EQ(memory.used(), array.capacity() * sizeof(uint32_t));
    }
  }
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(array.size(), 350u);
  for (uint32_t i = 0; i < array.size(); ++i) ASSERT_EQ(array.data()[i], i);
  array.Clear();
  EXPECT_EQ(memory.used(), 0u);
}

// The transposed key copy: token-major rows written in batches of every size a sequence produces
// (one decode token, prefills that start and end off a cache line, a growth in between) land at
// [channel row][token], and growing keeps what was written.
TEST(ChannelMajorHostTier, BatchesOfAnySizeLandTransposed) {
  constexpr int64_t kRowElems = 96;
  LimitedMemory memory(64 << 20);
  internal::ChannelMajorHostTier cm(kRowElems, &memory);
  std::mt19937 rng(7);
  std::vector<kernels::Half> all;
  int64_t written = 0;
  for (const int64_t batch : {1, 31, 1, 33, 100, 64, 5, 300, 1, 2}) {
    ASSERT_TRUE(cm.Reserve(written + batch, written).ok());
    std::vector<kernels::Half> rows(static_cast<size_t>(batch * kRowElems));
    for (auto& h : rows) h.bits = static_cast<uint16_t>(rng());
    cm.Write(rows.data(), written, batch);
    all.insert(all.end(), rows.begin(), rows.end());
    written += batch;
    for (int64_t r = 0; r < kRowElems; ++r) {
      for (int64_t t = 0; t < written; ++t) {
        ASSERT_EQ(cm.data()[r * cm.capacity() + t].bits, all[static_cast<size_t>(t * kRowElems + r)].bits)
            << "channel row " << r << ", token " << t << ", after " << written << " tokens";
      }
    }
  }
}

TEST(HostTierMemory, SuspendReleasesAndResumeIsBitExact) {
  const SequencePlan plan = Plan(kPlan);
  LimitedMemory memory(1ull << 30);
  auto local = OpenWith(plan, nullptr);
  auto given = OpenWith(plan, &memory);
  ASSERT_TRUE(local && given);
  std::mt19937 rng(7);
  for (int l = 0; l < 5; ++l) {
    const auto k = Random(rng, 400 * kRow), v = Random(rng, 400 * kRow);
    ASSERT_TRUE(local->Append(l, k.data(), v.data(), 400).ok());
    ASSERT_TRUE(given->Append(l, k.data(), v.data(), 400).ok());
  }
  auto image = given->Suspend();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(memory.used(), 0u);
  ASSERT_TRUE(given->Resume(*image).ok());
  EXPECT_GT(memory.used(), 0u);
  for (int l = 0; l < 5; ++l) ExpectSameAttention(*local, *given, l, Random(rng, kQueryRow));
  // A resume the memory cannot hold fails, still suspended, and a good one works afterwards.
  LimitedMemory tiny(4096);
  SequenceOptions o;
  o.host_memory = &tiny;
  auto restored = Sequence::Restore(*image, o);
  EXPECT_EQ(restored.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(tiny.used(), 0u);
}

TEST(HostTierMemory, AGpuSequenceNeedsMemoryMappedForDma) {
  LimitedMemory memory(1 << 20);
  SequenceOptions o;
  o.cuda_device = 0;
  o.host_memory = &memory;
  EXPECT_EQ(Sequence::Open(Plan(kPlan), o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::sequence
