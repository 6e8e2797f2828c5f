#include "protocol/spsc_ring.h"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
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

// The wake-up handshake as the daemon and the client run it: the consumer sleeps on an eventfd
// only after PrepareToWait saw the ring empty, and the producer writes the eventfd when
// ConsumerNeedsWake says so. A lost wake-up leaves the consumer asleep with entries in the ring:
// its poll times out and the test fails (instead of hanging).
TEST(SpscRing, SleepingConsumerIsAlwaysWoken) {
  constexpr uint32_t kCap = 16;
  constexpr uint64_t kItems = 20000;
  std::vector<char> mem(SpscRing<Item>::BytesFor(kCap));
  SpscRing<Item>::Initialize(mem.data());
  SpscRing<Item> producer(mem.data(), kCap), consumer(mem.data(), kCap);
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(wake, 0);
  std::atomic<bool> stop{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the consumer sleeps first
    for (uint64_t i = 0; i < kItems && !stop;) {
      if (producer.TryPush({i, ~i}) != RingResult::kOk) {
        std::this_thread::yield();
        continue;
      }
      if (producer.ConsumerNeedsWake()) {
        const uint64_t one = 1;
        EXPECT_EQ(write(wake, &one, sizeof one), static_cast<ssize_t>(sizeof one));
      }
      if (++i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  struct StopAndJoin {  // a failed assertion below returns early: the producer stops, is joined
    std::atomic<bool>& stop;
    std::thread& t;
    ~StopAndJoin() {
      stop = true;
      t.join();
    }
  } stop_and_join{stop, t};
  uint64_t expected = 0, sleeps = 0;
  while (expected < kItems) {
    Item it;
    const RingResult r = consumer.TryPop(&it);
    ASSERT_NE(r, RingResult::kCorrupt);
    if (r == RingResult::kOk) {
      ASSERT_EQ(it.seq, expected);
      ASSERT_EQ(it.check, ~expected);
      ++expected;
      continue;
    }
    if (!consumer.PrepareToWait()) continue;
    ++sleeps;
    pollfd p{wake, POLLIN, 0};
    const int ready = poll(&p, 1, 10000);
    consumer.FinishWait();
    ASSERT_EQ(ready, 1) << "lost wake-up: asleep 10 s with " << consumer.Occupancy()
                        << " entries in the ring, after " << expected << " items";
    uint64_t count;
    ASSERT_EQ(read(wake, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  }
  close(wake);
  EXPECT_GT(sleeps, 0u);  // the handshake ran, not only the busy path
}

}  // namespace
}  // namespace kvt::protocol
