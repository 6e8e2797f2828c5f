#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sequence/transfer_scheduler.h"

namespace kvt::sequence {
namespace {

using namespace std::chrono_literals;

// Under load (the worker busy, every class queued), demand runs before prefetch before write-back,
// FIFO within a class.
TEST(TransferScheduler, DemandBeforePrefetchBeforeWriteBack) {
  TransferScheduler s;
  std::atomic<bool> release{false};
  const auto gate = s.Submit(TransferPriority::kWriteBack, 0, [&] {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  std::this_thread::sleep_for(20ms);  // the gate is running
  std::vector<TransferScheduler::Ticket> wb, pf, dm;
  for (int i = 0; i < 3; ++i) {
    wb.push_back(s.Submit(TransferPriority::kWriteBack, 10, [] {}));
    pf.push_back(s.Submit(TransferPriority::kPrefetch, 20, [] {}));
    dm.push_back(s.Submit(TransferPriority::kDemand, 30, [] {}));
  }
  release = true;
  for (auto t : wb) ASSERT_TRUE(s.Wait(t).ok());
  for (auto t : pf) ASSERT_TRUE(s.Wait(t).ok());
  for (auto t : dm) ASSERT_TRUE(s.Wait(t).ok());
  ASSERT_TRUE(s.Wait(gate).ok());
  const std::vector<TransferScheduler::Ticket> expect = {gate, dm[0], dm[1], dm[2], pf[0], pf[1], pf[2],
                                                         wb[0], wb[1], wb[2]};
  EXPECT_EQ(s.start_order(), expect);
  const TransferStats st = s.stats();
  EXPECT_EQ(st.count[0], 3u);
  EXPECT_EQ(st.bytes[1], 60u);
  EXPECT_EQ(st.count[2], 4u);
  EXPECT_FALSE(s.Wait(gate).ok());  // consumed
  EXPECT_FALSE(s.Wait(9999).ok());
}

// Raise moves a queued job ahead of later jobs of the raised class (a write-back a demand fetch
// depends on), leaves the others in their class, and keeps the job's accounting in its own class.
TEST(TransferScheduler, RaiseRunsAWriteBackBeforeTheDemandThatNeedsIt) {
  TransferScheduler s;
  std::atomic<bool> release{false};
  const auto gate = s.Submit(TransferPriority::kWriteBack, 0, [&] {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  std::this_thread::sleep_for(20ms);  // the gate is running
  const auto wb1 = s.Submit(TransferPriority::kWriteBack, 7, [] {});
  const auto wb2 = s.Submit(TransferPriority::kWriteBack, 7, [] {});
  const auto pf = s.Submit(TransferPriority::kPrefetch, 5, [] {});
  ASSERT_TRUE(s.Raise(wb2, TransferPriority::kDemand).ok());
  const auto dm = s.Submit(TransferPriority::kDemand, 3, [] {});
  ASSERT_TRUE(s.Raise(pf, TransferPriority::kPrefetch).ok());    // already there: no-op
  ASSERT_TRUE(s.Raise(gate, TransferPriority::kDemand).ok());    // running: no-op
  EXPECT_EQ(s.Raise(12345, TransferPriority::kDemand).code(), StatusCode::kInvalidArgument);
  release = true;
  for (auto t : {dm, wb2, pf, wb1, gate}) ASSERT_TRUE(s.Wait(t).ok());
  const std::vector<TransferScheduler::Ticket> expect = {gate, wb2, dm, pf, wb1};
  EXPECT_EQ(s.start_order(), expect);
  const TransferStats st = s.stats();
  EXPECT_EQ(st.raised[2], 1u);
  EXPECT_EQ(st.raised[1], 0u);
  EXPECT_EQ(st.count[2], 3u);   // wb2 stays a write-back in the figures
  EXPECT_EQ(st.bytes[2], 14u);
  EXPECT_EQ(st.count[0], 1u);
  EXPECT_EQ(s.Raise(wb2, TransferPriority::kDemand).code(), StatusCode::kInvalidArgument);  // waited
}

// A transfer finished before anybody waits is fully hidden; one waited at once is mostly exposed.
TEST(TransferScheduler, HiddenTimeAccounting) {
  TransferScheduler s;
  const auto early = s.Submit(TransferPriority::kPrefetch, 1, [] { std::this_thread::sleep_for(30ms); });
  std::this_thread::sleep_for(80ms);  // "compute" while it runs
  ASSERT_TRUE(s.Wait(early).ok());
  const auto late = s.Submit(TransferPriority::kDemand, 1, [] { std::this_thread::sleep_for(30ms); });
  ASSERT_TRUE(s.Wait(late).ok());
  const TransferStats st = s.stats();
  EXPECT_NEAR(st.hidden_s[1], st.busy_s[1], 1e-6);
  EXPECT_LT(st.hidden_s[0], 0.5 * st.busy_s[0]);
  EXPECT_GE(st.wait_s, 0.025);
}

// Many producers: every ticket completes, Drain returns with the queue empty.
TEST(TransferScheduler, ConcurrentSubmitters) {
  TransferScheduler s;
  std::atomic<int> ran{0};
  std::vector<std::thread> th;
  for (int p = 0; p < 4; ++p) {
    th.emplace_back([&, p] {
      for (int i = 0; i < 200; ++i) {
        auto t = s.Submit(static_cast<TransferPriority>((i + p) % 3), 1, [&] { ran++; });
        if (i % 2 == 0) {
          EXPECT_TRUE(s.Wait(t).ok());
        }
      }
    });
  }
  for (auto& t : th) t.join();
  s.Drain();
  EXPECT_EQ(ran.load(), 800);
}

}  // namespace
}  // namespace kvt::sequence
