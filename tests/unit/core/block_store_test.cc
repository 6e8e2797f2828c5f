#include "tiering/block_store.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "tiering/block_plane.h"
#include "tiering/lru_policy.h"

namespace kvt::tiering {
namespace {

constexpr uint64_t kChunk = 64 << 10;

class BlockStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host::HostTierOptions o;
    o.capacity_bytes = 16 * kChunk;  // 1 MiB: room for exactly 16 chunks
    o.lock_memory = false;
    auto h = host::HostTier::Create(o);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    host_ = std::move(*h);
    store_ = std::make_unique<BlockStore>(host_.get(), std::make_unique<LruPolicy>(), registry_);
  }
  static ChunkKey Key(uint64_t i) { return ChunkKey{i * 7919 + 1, i}; }
  static std::vector<char> Payload(uint64_t i) {
    std::vector<char> p(kChunk);
    std::mt19937_64 rng(i);
    for (auto& c : p) c = static_cast<char>(rng());
    return p;
  }

  prometheus::Registry registry_;
  std::unique_ptr<host::HostTier> host_;
  std::unique_ptr<BlockStore> store_;
  Fingerprint fp_{1, 2};
};

TEST_F(BlockStoreTest, PutGetRoundTripIsBitExact) {
  for (uint64_t i = 0; i < 8; ++i) {
    auto p = Payload(i);
    ASSERT_EQ(*store_->Put(Key(i), fp_, p.data(), p.size()), BlockStore::PutResult::kStored);
  }
  for (uint64_t i = 0; i < 8; ++i) {
    std::vector<char> out(kChunk);
    ASSERT_TRUE(store_->Get(Key(i), fp_, out.data(), out.size()).ok());
    EXPECT_EQ(out, Payload(i));
  }
  auto p = Payload(0);
  EXPECT_EQ(*store_->Put(Key(0), fp_, p.data(), p.size()), BlockStore::PutResult::kAlreadyPresent);
}

TEST_F(BlockStoreTest, WrongLengthOrNamespaceIsAMissNeverWrongData) {
  auto p = Payload(1);
  ASSERT_TRUE(store_->Put(Key(1), fp_, p.data(), p.size()).ok());
  std::vector<char> out(kChunk / 2);
  EXPECT_EQ(store_->Get(Key(1), fp_, out.data(), out.size()).code(), StatusCode::kInvalidArgument);
  std::vector<char> full(kChunk);
  EXPECT_FALSE(store_->Get(Key(1), Fingerprint{9, 9}, full.data(), full.size()).ok());
  EXPECT_EQ(store_->Get(Key(2), fp_, full.data(), full.size()).code(), StatusCode::kNotFound);
}

TEST_F(BlockStoreTest, EvictsLeastRecentlyUsedAndNeverPinned) {
  for (uint64_t i = 0; i < 16; ++i) {
    auto p = Payload(i);
    ASSERT_TRUE(store_->Put(Key(i), fp_, p.data(), p.size()).ok());
  }
  ASSERT_TRUE(store_->Pin(Key(0)));  // the oldest, but pinned
  std::vector<char> out(kChunk);
  ASSERT_TRUE(store_->Get(Key(1), fp_, out.data(), out.size()).ok());  // touch 1: now recent
  for (uint64_t i = 16; i < 20; ++i) {
    auto p = Payload(i);
    ASSERT_TRUE(store_->Put(Key(i), fp_, p.data(), p.size()).ok()) << i;
  }
  EXPECT_TRUE(store_->Contains(Key(0)));   // pinned survives
  EXPECT_TRUE(store_->Contains(Key(1)));   // recently used survives
  EXPECT_FALSE(store_->Contains(Key(2)));  // oldest unpinned went first
  EXPECT_FALSE(store_->Contains(Key(4)));
  EXPECT_TRUE(store_->Contains(Key(19)));
  EXPECT_LE(host_->used_bytes(), host_->capacity_bytes());
  EXPECT_EQ(store_->counters().evictions, 4u);
}

TEST_F(BlockStoreTest, FullOfPinnedChunksRefusesInsteadOfGrowing) {
  for (uint64_t i = 0; i < 16; ++i) {
    auto p = Payload(i);
    ASSERT_TRUE(store_->Put(Key(i), fp_, p.data(), p.size()).ok());
    ASSERT_TRUE(store_->Pin(Key(i)));
  }
  auto p = Payload(99);
  auto r = store_->Put(Key(99), fp_, p.data(), p.size());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->counters().chunks, 16u);
  ASSERT_TRUE(store_->Unpin(Key(3)));
  EXPECT_TRUE(store_->Put(Key(99), fp_, p.data(), p.size()).ok());
  EXPECT_FALSE(store_->Contains(Key(3)));
}

TEST_F(BlockStoreTest, PinnedChunksLeaveTheEvictionOrderAndComeBackWhenUnpinned) {
  auto policy = std::make_unique<LruPolicy>();
  LruPolicy* order = policy.get();
  BlockStore store(host_.get(), std::move(policy), registry_);
  for (uint64_t i = 0; i < 4; ++i) {
    auto p = Payload(i);
    ASSERT_TRUE(store.Put(Key(i), fp_, p.data(), p.size()).ok());
  }
  auto has = [&](uint64_t i) {
    for (const ChunkKey& k : order->Candidates(0, 100)) {
      if (k == Key(i)) return true;
    }
    return false;
  };
  ASSERT_TRUE(store.Pin(Key(1)));
  ASSERT_TRUE(store.Pin(Key(1)));  // twice: still out until the last unpin
  EXPECT_FALSE(has(1)) << "eviction must not have to walk past pinned chunks";
  EXPECT_TRUE(has(0));
  ASSERT_TRUE(store.Unpin(Key(1)));
  EXPECT_FALSE(has(1));
  ASSERT_TRUE(store.Unpin(Key(1)));
  EXPECT_TRUE(has(1));
  EXPECT_EQ(order->Candidates(0, 1).front(), Key(0)) << "the oldest unpinned chunk still goes first";
}

TEST_F(BlockStoreTest, ConcurrentClientsNeverSeeTornChunks) {
  // Writers churn far more chunks than fit; readers must only ever see exact payloads or misses.
  std::atomic<bool> bad{false};
  auto writer = [&](uint64_t base) {
    for (uint64_t i = 0; i < 200; ++i) {
      auto p = Payload(base + i % 40);
      (void)store_->Put(Key(base + i % 40), fp_, p.data(), p.size());
    }
  };
  auto reader = [&] {
    std::vector<char> out(kChunk);
    for (int n = 0; n < 400; ++n) {
      uint64_t k = (n * 13) % 40;
      if (store_->Get(Key(k), fp_, out.data(), out.size()).ok() && out != Payload(k)) bad = true;
    }
  };
  std::thread w1(writer, 0), w2(writer, 0), r1(reader), r2(reader);
  w1.join();
  w2.join();
  r1.join();
  r2.join();
  EXPECT_FALSE(bad);
  EXPECT_LE(host_->used_bytes(), host_->capacity_bytes());
}

TEST_F(BlockStoreTest, PrefixOperationsStopAtTheFirstMissingChunk) {
  Layout l;
  l.model_id = "m";
  l.num_layers = 1;
  l.num_kv_heads = 1;
  l.head_dim = 32;
  l.dtype = Dtype::kF32;
  l.tokens_per_chunk = 4;  // 1*2*4*1*32*4 = 1 KiB chunks
  auto ns = MakeNamespace(l, "t");
  ASSERT_TRUE(ns.ok());
  BlockPlane plane(store_.get());
  std::vector<uint32_t> tokens(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 3);
  std::vector<char> kv(10 * ns->chunk_bytes);
  for (size_t i = 0; i < kv.size(); ++i) kv[i] = static_cast<char>(i * 31);
  auto s = plane.Store(*ns, tokens, 0, kv.data(), kv.size());
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.value, 10u);
  EXPECT_EQ(plane.Lookup(*ns, tokens).value, 40u);
  for (size_t k = 0; k < 10; ++k) {
    auto changed = tokens;
    changed[k * 4 + 2] ^= 1;  // a changed token in chunk k: exactly k chunks hit
    EXPECT_EQ(plane.Lookup(*ns, changed).value, k * 4) << k;
  }
  std::vector<char> out(kv.size());
  auto r = plane.Retrieve(*ns, tokens, 0, out.data(), out.size());
  EXPECT_EQ(r.value, 40u);
  EXPECT_EQ(out, kv);
  EXPECT_EQ(plane.Remove(*ns, std::span(tokens).subspan(0, 20)).value, 5u);
  EXPECT_EQ(plane.Lookup(*ns, tokens).value, 0u);
  // Wrong size is refused with a readable message.
  auto bad = plane.Store(*ns, tokens, 0, kv.data(), kv.size() - 1);
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status.message().find("whole chunks"), std::string::npos);
}

}  // namespace
}  // namespace kvt::tiering
