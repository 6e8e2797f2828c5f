#include "tiering/transfer_scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace kvt::tiering {
namespace {

TEST(TransferScheduler, DemandBeforePrefetchBeforeWriteBack) {
  std::mutex mu;
  std::vector<int> order;
  std::atomic<bool> release{false};
  {
    TransferScheduler s(2);  // one worker for non-demand, one kept for demand
    s.Submit(TransferPriority::kWriteBack, [&] { while (!release) std::this_thread::yield(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (int i = 0; i < 3; ++i) s.Submit(TransferPriority::kWriteBack, [&, i] { std::lock_guard l(mu); order.push_back(30 + i); });
    s.Submit(TransferPriority::kPrefetch, [&] { std::lock_guard l(mu); order.push_back(20); });
    // A demand task runs at once on the reserved worker although write-back is busy and queued.
    std::atomic<bool> demand_ran{false};
    s.Submit(TransferPriority::kDemand, [&] { demand_ran = true; std::lock_guard l(mu); order.push_back(10); });
    for (int i = 0; i < 200 && !demand_ran; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(demand_ran);
    release = true;
  }
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[0], 10);
  EXPECT_EQ(order[1], 20);
  EXPECT_EQ(order[2], 30);
}

}  // namespace
}  // namespace kvt::tiering
