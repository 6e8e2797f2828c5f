// The GPU tier's placement, pinning, eviction and demotion, over device memory simulated in host
// memory (tiering::DeviceMemory), so it runs on every machine; the real pool is exercised by
// tests/gpu/gpu_tier_gpu_test.cc. Also: a block plane without a GPU tier refuses GPU requests
// with UNSUPPORTED and serves everything else as before.
#include "tiering/gpu_tier.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "tiering/block_plane.h"
#include "tiering/lru_policy.h"

namespace kvt::tiering {
namespace {

constexpr uint64_t kChunk = 64 << 10;

// Device memory that is host memory, with a switch to make copies fail.
class FakeDeviceMemory final : public DeviceMemory {
 public:
  explicit FakeDeviceMemory(uint64_t bytes) : bytes_(bytes) {}
  uint64_t capacity_bytes() const override { return bytes_.size(); }
  Status CopyToDevice(uint64_t offset, const void* src, uint64_t n) override {
    if (fail) return Internal("injected copy failure");
    if (offset + n > bytes_.size()) return InvalidArgument("out of range");
    std::memcpy(bytes_.data() + offset, src, n);
    return Status::Ok();
  }
  Status CopyToHost(void* dst, uint64_t offset, uint64_t n) override {
    if (fail) return Internal("injected copy failure");
    if (offset + n > bytes_.size()) return InvalidArgument("out of range");
    std::memcpy(dst, bytes_.data() + offset, n);
    return Status::Ok();
  }
  const char* at(uint64_t offset) const { return bytes_.data() + offset; }
  bool fail = false;

 private:
  std::vector<char> bytes_;
};

class GpuTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host::HostTierOptions o;
    o.capacity_bytes = 16 * kChunk;  // room for 16 chunks on the host
    o.lock_memory = false;
    auto h = host::HostTier::Create(o);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    host_ = std::move(*h);
    store_ = std::make_unique<BlockStore>(host_.get(), std::make_unique<LruPolicy>(), registry_);
    tier_ = std::make_unique<GpuTier>(&device_, store_.get(), registry_);
  }
  static ChunkKey Key(uint64_t i) { return ChunkKey{i * 7919 + 1, i}; }
  static std::vector<char> Payload(uint64_t i) {
    std::vector<char> p(kChunk);
    std::mt19937_64 rng(i + 100);
    for (auto& c : p) c = static_cast<char>(rng());
    return p;
  }
  void Put(uint64_t i) {
    auto p = Payload(i);
    ASSERT_TRUE(store_->Put(Key(i), fp_, p.data(), p.size()).ok());
  }
  bool DeviceHolds(uint64_t offset, uint64_t i) const {
    return std::memcmp(device_.at(offset), Payload(i).data(), kChunk) == 0;
  }

  prometheus::Registry registry_;
  FakeDeviceMemory device_{4 * kChunk};  // room for 4 chunks on the "GPU"
  std::unique_ptr<host::HostTier> host_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<GpuTier> tier_;
  Fingerprint fp_{1, 2};
};

TEST_F(GpuTierTest, AcquireCopiesTheHostChunkAndPinsIt) {
  Put(1);
  auto off = tier_->Acquire(Key(1), fp_, kChunk);
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_TRUE(DeviceHolds(*off, 1));
  EXPECT_TRUE(tier_->Contains(Key(1)));
  auto again = tier_->Acquire(Key(1), fp_, kChunk);  // resident: same place, a second pin
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *off);
  GpuTierCounters c = tier_->counters();
  EXPECT_EQ(c.chunks, 1u);
  EXPECT_EQ(c.pinned_chunks, 1u);
  EXPECT_EQ(c.used_bytes, kChunk);
  EXPECT_EQ(c.capacity_bytes, 4 * kChunk);
  EXPECT_TRUE(tier_->Release(Key(1)));
  EXPECT_TRUE(tier_->Release(Key(1)));
  EXPECT_FALSE(tier_->Release(Key(1)));  // no pin left
  EXPECT_EQ(tier_->counters().pinned_chunks, 0u);
  EXPECT_TRUE(tier_->Contains(Key(1)));  // unpinned chunks stay until space is needed
}

TEST_F(GpuTierTest, MissesAndMismatchesAreErrorsNeverWrongData) {
  EXPECT_EQ(tier_->Acquire(Key(9), fp_, kChunk).status().code(), StatusCode::kNotFound);
  Put(2);
  EXPECT_EQ(tier_->Acquire(Key(2), Fingerprint{3, 4}, kChunk).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(tier_->Acquire(Key(2), fp_, kChunk).ok());
  EXPECT_EQ(tier_->Acquire(Key(2), fp_, kChunk / 2).status().code(), StatusCode::kInvalidArgument);
  std::vector<char> out(kChunk);
  EXPECT_EQ(tier_->CopyOut(Key(2), Fingerprint{3, 4}, out.data(), kChunk).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tier_->CopyOut(Key(9), fp_, out.data(), kChunk).code(), StatusCode::kNotFound);
  EXPECT_EQ(tier_->counters().chunks, 1u);
}

TEST_F(GpuTierTest, FullOfPinnedChunksIsResourceExhausted) {
  for (uint64_t i = 0; i < 5; ++i) Put(i);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(tier_->Acquire(Key(i), fp_, kChunk).ok());
  EXPECT_EQ(tier_->Acquire(Key(4), fp_, kChunk).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(tier_->counters().chunks, 4u);
  ASSERT_TRUE(tier_->Release(Key(0)));
  auto off = tier_->Acquire(Key(4), fp_, kChunk);  // evicts chunk 0, the only unpinned one
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_TRUE(DeviceHolds(*off, 4));
  EXPECT_FALSE(tier_->Contains(Key(0)));
  for (uint64_t i = 1; i < 4; ++i) EXPECT_TRUE(tier_->Contains(Key(i)));
}

TEST_F(GpuTierTest, EvictionDemotesChunksTheHostTierNoLongerHolds) {
  for (uint64_t i = 0; i < 4; ++i) Put(i);
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < 4; ++i) offsets.push_back(*tier_->Acquire(Key(i), fp_, kChunk));
  // The host tier lets go of every chunk (they are pinned on the GPU, not on the host).
  EXPECT_EQ(store_->Evict(UINT64_MAX, EvictionReason::kOperator), 4u);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_FALSE(store_->index().Contains(Key(i)));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(tier_->Release(Key(i)));
  EXPECT_EQ(tier_->Evict(2 * kChunk), 2u);  // the two least recently released: 0 and 1
  EXPECT_EQ(tier_->counters().demotions, 2u);
  for (uint64_t i = 0; i < 2; ++i) {
    std::vector<char> out(kChunk);
    ASSERT_TRUE(store_->Get(Key(i), fp_, out.data(), kChunk).ok()) << i;
    EXPECT_EQ(out, Payload(i)) << i;
  }
  // Chunks 2 and 3 live on the GPU only: a plane reads them from there.
  EXPECT_FALSE(store_->index().Contains(Key(2)));
  std::vector<char> out(kChunk);
  ASSERT_TRUE(tier_->CopyOut(Key(2), fp_, out.data(), kChunk).ok());
  EXPECT_EQ(out, Payload(2));
}

TEST_F(GpuTierTest, EvictionKeepsTheHostCopyWithoutCopyingAgain) {
  Put(1);
  ASSERT_TRUE(tier_->Acquire(Key(1), fp_, kChunk).ok());
  ASSERT_TRUE(tier_->Release(Key(1)));
  device_.fail = true;  // a demotion would have to copy and fail: it must not try
  EXPECT_EQ(tier_->Evict(kChunk), 1u);
  EXPECT_EQ(tier_->counters().demotions, 0u);
  std::vector<char> out(kChunk);
  ASSERT_TRUE(store_->Get(Key(1), fp_, out.data(), kChunk).ok());
  EXPECT_EQ(out, Payload(1));
}

TEST_F(GpuTierTest, ACopyFailureIsAStatusAndLeavesNothingBehind) {
  Put(1);
  device_.fail = true;
  EXPECT_EQ(tier_->Acquire(Key(1), fp_, kChunk).status().code(), StatusCode::kInternal);
  EXPECT_FALSE(tier_->Contains(Key(1)));
  EXPECT_EQ(tier_->counters().used_bytes, 0u);
  device_.fail = false;
  EXPECT_TRUE(tier_->Acquire(Key(1), fp_, kChunk).ok());
}

TEST_F(GpuTierTest, ARemovedPinnedChunkKeepsItsExtentUntilTheLastUnpin) {
  for (uint64_t i = 0; i < 5; ++i) Put(i);
  auto off0 = tier_->Acquire(Key(0), fp_, kChunk);
  ASSERT_TRUE(off0.ok());
  EXPECT_TRUE(tier_->Remove(Key(0)));
  EXPECT_FALSE(tier_->Contains(Key(0)));
  EXPECT_EQ(tier_->Acquire(Key(0), fp_, kChunk).status().code(), StatusCode::kNotFound);
  for (uint64_t i = 1; i < 4; ++i) ASSERT_TRUE(tier_->Acquire(Key(i), fp_, kChunk).ok());
  // The pool is full: the removed chunk's extent is still the client's.
  EXPECT_EQ(tier_->Acquire(Key(4), fp_, kChunk).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(DeviceHolds(*off0, 0));
  EXPECT_TRUE(tier_->Release(Key(0)));  // the last pin: the extent returns
  auto off4 = tier_->Acquire(Key(4), fp_, kChunk);
  ASSERT_TRUE(off4.ok()) << off4.status().ToString();
  EXPECT_EQ(*off4, *off0);
  EXPECT_TRUE(DeviceHolds(*off4, 4));
}

TEST_F(GpuTierTest, ConcurrentClientsNeverSeeTheirPinnedExtentReused) {
  constexpr uint64_t kChunks = 8;  // twice what the pool holds: constant eviction
  for (uint64_t i = 0; i < kChunks; ++i) Put(i);
  std::atomic<int> wrong{0}, exhausted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int n = 0; n < 300; ++n) {
        const uint64_t i = rng() % kChunks;
        auto off = tier_->Acquire(Key(i), fp_, kChunk);
        if (!off.ok()) {
          if (off.status().code() == StatusCode::kResourceExhausted) ++exhausted;
          else ++wrong;
          continue;
        }
        if (!DeviceHolds(*off, i)) ++wrong;  // pinned: nobody may have reused the extent
        if (!tier_->Release(Key(i))) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  GpuTierCounters c = tier_->counters();
  EXPECT_EQ(c.pinned_chunks, 0u);
  EXPECT_LE(c.used_bytes, 4 * kChunk);
  EXPECT_GT(c.evictions, 0u);
  EXPECT_EQ(c.demotions, 0u);  // the host tier kept every chunk
}

// The plane over a GPU tier: GPU-only chunks count for lookup and retrieve; pins are leased.
class GpuPlaneTest : public GpuTierTest {
 protected:
  void SetUp() override {
    GpuTierTest::SetUp();
    Layout l;
    l.model_id = "m";
    l.num_layers = 2;
    l.num_kv_heads = 4;
    l.head_dim = 64;
    l.dtype = Dtype::kF16;
    l.tokens_per_chunk = 32;  // 2*2*32*4*64*2 = 64 KiB = kChunk
    auto ns = MakeNamespace(l, "t");
    ASSERT_TRUE(ns.ok());
    ns_ = *ns;
    ASSERT_EQ(ns_.chunk_bytes, kChunk);
    plane_ = std::make_unique<BlockPlane>(store_.get());
    tokens_.resize(3 * 32);
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = static_cast<uint32_t>(i * 13 + 5);
    kv_.resize(3 * kChunk);
    std::mt19937_64 rng(7);
    for (auto& c : kv_) c = static_cast<char>(rng());
  }
  Namespace ns_;
  std::unique_ptr<BlockPlane> plane_;
  std::vector<uint32_t> tokens_;
  std::vector<char> kv_;
};

TEST_F(GpuPlaneTest, WithoutAGpuTierGpuRequestsAreUnsupportedAndTheRestWorks) {
  ASSERT_TRUE(plane_->Store(ns_, tokens_, 0, kv_.data(), kv_.size()).status.ok());
  PinLease lease;
  uint64_t offsets[3];
  PrefixResult r = plane_->GpuAcquire(ns_, tokens_, offsets, 3, &lease);
  EXPECT_EQ(r.status.code(), StatusCode::kUnsupported);
  EXPECT_EQ(r.value, 0u);
  EXPECT_TRUE(lease.empty());
  EXPECT_EQ(plane_->GpuRelease(ns_, tokens_, &lease).status.code(), StatusCode::kUnsupported);
  EXPECT_EQ(plane_->Lookup(ns_, tokens_).value, tokens_.size());
  std::vector<char> out(kv_.size());
  EXPECT_EQ(plane_->Retrieve(ns_, tokens_, 0, out.data(), out.size()).value, tokens_.size());
  EXPECT_EQ(out, kv_);
}

TEST_F(GpuPlaneTest, GpuOnlyChunksAreFoundRetrievedAndReleasedWithTheLease) {
  plane_->set_gpu_tier(tier_.get());
  ASSERT_TRUE(plane_->Store(ns_, tokens_, 0, kv_.data(), kv_.size()).status.ok());
  PinLease lease;
  uint64_t offsets[3] = {};
  PrefixResult r = plane_->GpuAcquire(ns_, tokens_, offsets, 3, &lease);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.value, tokens_.size());
  EXPECT_EQ(lease.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(std::memcmp(device_.at(offsets[i]), kv_.data() + i * kChunk, kChunk), 0);
  store_->Evict(UINT64_MAX, EvictionReason::kOperator);  // the host tier forgets them
  EXPECT_EQ(plane_->Lookup(ns_, tokens_).value, tokens_.size());
  std::vector<char> out(kv_.size());
  EXPECT_EQ(plane_->Retrieve(ns_, tokens_, 0, out.data(), out.size()).value, tokens_.size());
  EXPECT_EQ(out, kv_);
  plane_->ReleaseGpuLease(&lease);
  EXPECT_TRUE(lease.empty());
  EXPECT_EQ(tier_->counters().pinned_chunks, 0u);
  EXPECT_EQ(plane_->Remove(ns_, tokens_).value, 3u);
  EXPECT_EQ(tier_->counters().chunks, 0u);
  EXPECT_EQ(plane_->Lookup(ns_, tokens_).value, 0u);
}

TEST_F(GpuPlaneTest, AcquireStopsAtTheFirstMissAndReleaseOnlyTouchesThisLease) {
  plane_->set_gpu_tier(tier_.get());
  // Only the first chunk stored: the prefix on the GPU is one chunk long.
  ASSERT_TRUE(plane_->Store(ns_, std::span<const uint32_t>(tokens_).first(32), 0, kv_.data(), kChunk).status.ok());
  PinLease mine, theirs;
  uint64_t offsets[3] = {};
  PrefixResult r = plane_->GpuAcquire(ns_, tokens_, offsets, 3, &mine);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.value, 32u);
  EXPECT_EQ(plane_->GpuRelease(ns_, tokens_, &theirs).value, 0u);  // not theirs to release
  EXPECT_EQ(tier_->counters().pinned_chunks, 1u);
  EXPECT_EQ(plane_->GpuRelease(ns_, tokens_, &mine).value, 32u);
  EXPECT_EQ(tier_->counters().pinned_chunks, 0u);
}

}  // namespace
}  // namespace kvt::tiering
