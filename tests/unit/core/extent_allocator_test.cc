#include "common/extent_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace kvt {
namespace {

TEST(ExtentAllocator, AllocatesAlignedAndRespectsCapacity) {
  ExtentAllocator a(1 << 20, 4096);
  auto x = a.Allocate(1);
  ASSERT_TRUE(x);
  EXPECT_EQ(*x % 4096, 0u);
  EXPECT_EQ(a.used_bytes(), 4096u);
  EXPECT_FALSE(a.Allocate((1 << 20)));  // only 1 MiB - 4 KiB left
  EXPECT_FALSE(a.Allocate(0));
  a.Free(*x, 1);
  EXPECT_EQ(a.used_bytes(), 0u);
  EXPECT_TRUE(a.Allocate(1 << 20));  // coalesced back into one extent
}

TEST(ExtentAllocator, RandomChurnNeverOverlapsAndCoalescesFully) {
  constexpr uint64_t kCap = 64 << 20;
  ExtentAllocator a(kCap, 4096);
  std::mt19937_64 rng(42);
  std::map<uint64_t, uint64_t> live;  // offset -> rounded bytes
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      uint64_t bytes = 1 + rng() % (1 << 20);
      auto off = a.Allocate(bytes);
      if (!off) continue;
      uint64_t rounded = a.RoundUp(bytes);
      auto next = live.lower_bound(*off);
      if (next != live.end()) {
        ASSERT_LE(*off + rounded, next->first);
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second, *off);
      }
      ASSERT_LE(*off + rounded, kCap);
      live[*off] = rounded;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      a.Free(it->first, it->second);
      live.erase(it);
    }
  }
  uint64_t used = 0;
  for (auto& [o, b] : live) used += b;
  EXPECT_EQ(a.used_bytes(), used);
  for (auto& [o, b] : live) a.Free(o, b);
  EXPECT_EQ(a.used_bytes(), 0u);
  EXPECT_EQ(a.largest_free_extent(), kCap);
}

}  // namespace
}  // namespace kvt
