#include "protocol/spsc_ring.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace kvt::protocol {
namespace {

struct Item {
  uint64_t seq;
  uint64_t check;
};

TEST(SpscRing, FillsDrainsAndWraps) {
  std::vector<char> mem(SpscRing<Item>::BytesFor(8) + 64);
  SpscRing<Item>::Initialize(mem.data());
  SpscRing<Item> ring(mem.data(), 8);
  for (uint64_t round = 0; round < 5; ++round) {
    for (uint64_t i = 0; i < 8; ++i) ASSERT_EQ(ring.TryPush({round * 8 + i, ~(round * 8 + i)}), RingResult::kOk);
    EXPECT_EQ(ring.TryPush({0, 0}), RingResult::kFull);
    EXPECT_EQ(ring.Occupancy(), 8u);
    for (uint64_t i = 0; i < 8; ++i) {
      Item it;
      ASSERT_EQ(ring.TryPop(&it), RingResult::kOk);
      EXPECT_EQ(it.seq, round * 8 + i);
    }
    Item it;
    EXPECT_EQ(ring.TryPop(&it), RingResult::kEmpty);
  }
}

TEST(SpscRing, DetectsCorruptCountersFromThePeer) {
  std::vector<char> mem(SpscRing<Item>::BytesFor(8));
  SpscRing<Item>::Initialize(mem.data());
  SpscRing<Item> ring(mem.data(), 8);
  auto* header = reinterpret_cast<RingHeader*>(mem.data());
  header->tail.value.store(1000);  // a hostile producer claims 1000 entries in an 8-entry ring
  Item it;
  EXPECT_EQ(ring.TryPop(&it), RingResult::kCorrupt);
  header->tail.value.store(0);
  header->head.value.store(1000);  // a hostile consumer claims to be ahead of the producer
  EXPECT_EQ(ring.TryPush({1, 1}), RingResult::kCorrupt);
}

TEST(SpscRing, ConcurrentProducerConsumerKeepOrderAndData) {
  constexpr uint32_t kCap = 64;
  constexpr uint64_t kItems = 200000;
  std::vector<char> mem(SpscRing<Item>::BytesFor(kCap));
  SpscRing<Item>::Initialize(mem.data());
  SpscRing<Item> producer(mem.data(), kCap), consumer(mem.data(), kCap);
  std::thread t([&] {
    for (uint64_t i = 0; i < kItems;) {
      if (producer.TryPush({i, i * 0x9e3779b97f4a7c15ull}) == RingResult::kOk) ++i;
    }
  });
  uint64_t expected = 0;
  while (expected < kItems) {
    Item it;
    RingResult r = consumer.TryPop(&it);
    ASSERT_NE(r, RingResult::kCorrupt);
    if (r != RingResult::kOk) continue;
    ASSERT_EQ(it.seq, expected);
    ASSERT_EQ(it.check, expected * 0x9e3779b97f4a7c15ull);
    ++expected;
  }
  t.join();
}

}  // namespace
}  // namespace kvt::protocol
