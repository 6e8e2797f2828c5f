// daemon/sequence_metrics: what clients write into their SequenceStatsBlock is untrusted. Gauges
// are clamped, counters never go down, a block with a wrong magic reads as empty, and the figures
// of an ended session stay in the totals without a dip.
#include "daemon/sequence_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace kvt::daemon {
namespace {

using protocol::SequenceStatsBlock;

SequenceStatsBlock GoodBlock() {
  SequenceStatsBlock b{};
  b.magic = protocol::kSequenceStatsMagic;
  b.version = protocol::kSequenceStatsVersion;
  return b;
}

constexpr int kFull = 0, kOffload = 1, kSparse = 3;

// name{labels} -> value, from Collect(); histogram buckets as name_bucket{...,le=...}.
std::map<std::string, double> Scrape(const SequenceMetrics& m) {
  std::map<std::string, double> out;
  for (const auto& f : m.Collect()) {
    for (const auto& s : f.metric) {
      std::string labels;
      for (const auto& l : s.label) labels += (labels.empty() ? "" : ",") + l.name + "=" + l.value;
      switch (f.type) {
        case prometheus::MetricType::Gauge: out[f.name + "{" + labels + "}"] = s.gauge.value; break;
        case prometheus::MetricType::Counter: out[f.name + "{" + labels + "}"] = s.counter.value; break;
        case prometheus::MetricType::Histogram:
          out[f.name + "_count{" + labels + "}"] = static_cast<double>(s.histogram.sample_count);
          out[f.name + "_sum{" + labels + "}"] = s.histogram.sample_sum;
          for (const auto& b : s.histogram.bucket) {
            out[f.name + "_bucket{" + labels + ",le=" + std::to_string(b.upper_bound) + "}"] =
                static_cast<double>(b.cumulative_count);
          }
          break;
        default: break;
      }
    }
  }
  for (const auto& [k, v] : out) EXPECT_TRUE(std::isfinite(v) || k.find("le=inf") != std::string::npos) << k;
  return out;
}

TEST(SequenceMetrics, SumsSessionsPerTenantAndPolicy) {
  SequenceMetrics m;
  SequenceMetrics::Source a("tenant-a"), b("tenant-a"), c("tenant-b");
  SequenceStatsBlock ba = GoodBlock(), bb = GoodBlock();
  ba.sequences = 2;
  ba.policy[kFull].bytes = 1000;
  ba.policy[kFull].layer_tokens = 10;
  bb.sequences = 1;
  bb.policy[kFull].bytes = 3000;
  bb.policy[kFull].layer_tokens = 10;
  bb.policy[kSparse].fetch_steps[protocol::FetchBucketFor(5000)] = 3;
  bb.policy[kSparse].fetch_bytes = 15000;
  bb.policy[kSparse].transfer_hidden_ns = 2'000'000'000;
  bb.policy[kSparse].transfer_exposed_ns = 500'000'000;
  for (auto* s : {&a, &b, &c}) m.Add(s);
  a.SetBlock(&ba, protocol::kSequenceStatsVersion);
  b.SetBlock(&bb, protocol::kSequenceStatsVersion);
  // c registered nothing: no series for tenant-b.
  auto got = Scrape(m);
  EXPECT_EQ(got["kvt_sequences{tenant=tenant-a}"], 3.0);
  EXPECT_EQ(got.count("kvt_sequences{tenant=tenant-b}"), 0u);
  EXPECT_EQ(got["kvt_policy_bytes_per_token{policy=full}"], 200.0);
  EXPECT_EQ(got.count("kvt_policy_bytes_per_token{policy=kivi}"), 0u) << "no tokens: no ratio";
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=sparse}"], 3.0);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_sum{policy=sparse}"], 15000.0);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_bucket{policy=sparse,le=4096.000000}"], 0.0);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_bucket{policy=sparse,le=8192.000000}"], 3.0);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_bucket{policy=sparse,le=inf}"], 3.0);
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=hidden,policy=sparse}"], 2.0);
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=exposed,policy=sparse}"], 0.5);
  EXPECT_EQ(got.count("kvt_transfer_seconds_total{overlap=hidden,policy=full}"), 0u);
  SequenceFigures t = m.Totals();
  EXPECT_EQ(t.sequences, 3u);
  EXPECT_EQ(t.policy[kFull].bytes, 4000u);
  EXPECT_EQ(t.policy[kSparse].steps(), 3u);
  for (auto* s : {&a, &b, &c}) m.Retire(s);
}

TEST(SequenceMetrics, GarbageIsClampedAndCountersNeverGoDown) {
  SequenceMetrics m;
  SequenceMetrics::Source s("t");
  m.Add(&s);
  SequenceStatsBlock blk = GoodBlock();
  s.SetBlock(&blk, protocol::kSequenceStatsVersion);
  blk.sequences = static_cast<uint64_t>(-5);  // a client whose deltas went negative
  blk.policy[kFull].bytes = UINT64_MAX;       // -1 as int64
  blk.policy[kFull].layer_tokens = 7;
  blk.policy[kOffload].bytes = uint64_t{1} << 62;
  blk.policy[kOffload].layer_tokens = uint64_t{1} << 62;
  blk.policy[kOffload].fetch_steps[0] = UINT64_MAX;
  blk.policy[kOffload].fetch_bytes = 100;
  blk.policy[kOffload].transfer_hidden_ns = 5'000'000'000;
  auto got = Scrape(m);
  EXPECT_EQ(got["kvt_sequences{tenant=t}"], 0.0);
  EXPECT_EQ(got["kvt_policy_bytes_per_token{policy=full}"], 0.0);
  EXPECT_EQ(got["kvt_policy_bytes_per_token{policy=offload}"],
            static_cast<double>(kMaxReportedBytes) / static_cast<double>(kMaxReportedTokens));
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=offload}"], static_cast<double>(kMaxReportedCounter));
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=hidden,policy=offload}"], 5.0);

  // The client lowers its counters: the exported ones stay where they were.
  blk.policy[kOffload].fetch_steps[0] = 1;
  blk.policy[kOffload].fetch_bytes = 1;
  blk.policy[kOffload].transfer_hidden_ns = 1;
  got = Scrape(m);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=offload}"], static_cast<double>(kMaxReportedCounter));
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_sum{policy=offload}"], 100.0);
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=hidden,policy=offload}"], 5.0);

  // A wrong magic reads as nothing to report: gauges drop, counters keep what was seen.
  blk.magic = 0xdeadbeef;
  got = Scrape(m);
  EXPECT_EQ(got["kvt_sequences{tenant=t}"], 0.0);
  EXPECT_EQ(got.count("kvt_policy_bytes_per_token{policy=offload}"), 0u);
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=hidden,policy=offload}"], 5.0);
  m.Retire(&s);
}

TEST(SequenceMetrics, EndedSessionsKeepTheirCountersAndLoseTheirGauges) {
  SequenceMetrics m;
  auto s = std::make_unique<SequenceMetrics::Source>("t");
  m.Add(s.get());
  SequenceStatsBlock blk = GoodBlock();
  s->SetBlock(&blk, protocol::kSequenceStatsVersion);
  blk.sequences = 1;
  blk.policy[kSparse].bytes = 100;
  blk.policy[kSparse].layer_tokens = 1;
  blk.policy[kSparse].fetch_steps[2] = 4;
  blk.policy[kSparse].fetch_bytes = 4000;
  blk.policy[kSparse].transfer_exposed_ns = 250'000'000;
  (void)Scrape(m);
  blk.policy[kSparse].fetch_steps[2] = 6;  // written after the last scrape, before the session ended
  m.Retire(s.get());
  m.Retire(s.get());  // idempotent
  std::memset(&blk, 0xab, sizeof blk);  // the region is gone: nothing may read it any more
  s.reset();
  auto got = Scrape(m);
  EXPECT_EQ(got.count("kvt_sequences{tenant=t}"), 0u);
  EXPECT_EQ(got.count("kvt_policy_bytes_per_token{policy=sparse}"), 0u);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=sparse}"], 6.0);
  EXPECT_EQ(got["kvt_transfer_seconds_total{overlap=exposed,policy=sparse}"], 0.25);

  // A new session of the same tenant adds to the retired totals.
  SequenceMetrics::Source next("t");
  m.Add(&next);
  SequenceStatsBlock blk2 = GoodBlock();
  blk2.policy[kSparse].fetch_steps[2] = 1;
  next.SetBlock(&blk2, protocol::kSequenceStatsVersion);
  got = Scrape(m);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=sparse}"], 7.0);
  EXPECT_EQ(m.Totals().policy[kSparse].steps(), 7u);
  m.Retire(&next);
}

// A client's threads add to the block (as libkvtier's publisher does: relaxed atomic adds) while
// scrapes read it and the session ends: no torn or decreasing counter, and TSan sees no race.
TEST(SequenceMetrics, ConcurrentWritersAndScrapes) {
  SequenceMetrics m;
  SequenceMetrics::Source s("t");
  m.Add(&s);
  alignas(8) SequenceStatsBlock blk = GoodBlock();
  s.SetBlock(&blk, protocol::kSequenceStatsVersion);
  constexpr int kThreads = 3, kAdds = 20000;
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      while (!go.load()) {
      }
      for (int i = 0; i < kAdds; ++i) {
        std::atomic_ref<uint64_t>(blk.policy[kSparse].fetch_steps[1]).fetch_add(1, std::memory_order_relaxed);
        std::atomic_ref<uint64_t>(blk.policy[kSparse].fetch_bytes).fetch_add(2000, std::memory_order_relaxed);
        std::atomic_ref<uint64_t>(blk.sequences).fetch_add(1, std::memory_order_relaxed);
        std::atomic_ref<uint64_t>(blk.sequences).fetch_sub(1, std::memory_order_relaxed);
      }
    });
  }
  go = true;
  double last = 0;
  for (int i = 0; i < 200; ++i) {
    auto got = Scrape(m);
    const double n = got["kvt_dominant_token_bytes_per_step_count{policy=sparse}"];
    EXPECT_GE(n, last);
    EXPECT_LE(got["kvt_sequences{tenant=t}"], static_cast<double>(kThreads));
    last = n;
  }
  for (auto& w : writers) w.join();
  m.Retire(&s);
  auto got = Scrape(m);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_count{policy=sparse}"], double{kThreads} * kAdds);
  EXPECT_EQ(got["kvt_dominant_token_bytes_per_step_sum{policy=sparse}"], 2000.0 * kThreads * kAdds);
}

// Version 2 adds the in-client host tiers' heap bytes, per tenant; a version-1 block (an older
// libkvtier) is read without that field, never past its 848 bytes, and a block whose version field
// the client rewrites after registering reads as empty.
TEST(SequenceMetrics, HostTierHeapBytesByVersion) {
  SequenceMetrics m;
  SequenceMetrics::Source a("tenant-a"), b("tenant-a"), old("tenant-b");
  SequenceStatsBlock ba = GoodBlock(), bb = GoodBlock();
  ba.sequences = 1;
  ba.host_tier_heap_bytes = 3 << 20;
  bb.sequences = 1;
  bb.host_tier_heap_bytes = 1 << 20;
  // The old client's block: version 1, and the 8 bytes after its 848 are not its own (here: a
  // value that must never be read).
  SequenceStatsBlock bo = GoodBlock();
  bo.version = protocol::kSequenceStatsVersion1;
  bo.sequences = 4;
  bo.host_tier_heap_bytes = 999;
  for (auto* s : {&a, &b, &old}) m.Add(s);
  a.SetBlock(&ba, protocol::kSequenceStatsVersion);
  b.SetBlock(&bb, protocol::kSequenceStatsVersion);
  old.SetBlock(&bo, protocol::kSequenceStatsVersion1);
  auto got = Scrape(m);
  EXPECT_EQ(got["kvt_sequence_host_tier_heap_bytes{tenant=tenant-a}"], double{4 << 20});
  EXPECT_EQ(got["kvt_sequence_host_tier_heap_bytes{tenant=tenant-b}"], 0.0) << "version 1 has no such field";
  EXPECT_EQ(got["kvt_sequences{tenant=tenant-b}"], 4.0) << "the rest of a version-1 block still counts";
  EXPECT_EQ(m.Totals().host_tier_heap_bytes, uint64_t{4 << 20});

  ba.host_tier_heap_bytes = static_cast<uint64_t>(-5);  // a negative gauge reads as 0
  bb.host_tier_heap_bytes = uint64_t{1} << 62;          // clamped to kMaxReportedBytes
  EXPECT_EQ(m.Totals().host_tier_heap_bytes, kMaxReportedBytes);

  bo.version = protocol::kSequenceStatsVersion;  // claims the larger layout after registering
  got = Scrape(m);
  EXPECT_EQ(got["kvt_sequences{tenant=tenant-b}"], 0.0);
  EXPECT_EQ(got["kvt_sequence_host_tier_heap_bytes{tenant=tenant-b}"], 0.0);
  EXPECT_EQ(ReadSequenceStatsBlock(&bo, protocol::kSequenceStatsVersion1).sequences, 0u);
  EXPECT_EQ(ReadSequenceStatsBlock(&ba, 3).sequences, 0u) << "an unknown version reads as empty";
  for (auto* s : {&a, &b, &old}) m.Retire(s);
}

TEST(SequenceStatsBlock, FetchBuckets) {
  EXPECT_EQ(protocol::FetchBucketFor(0), 0);
  EXPECT_EQ(protocol::FetchBucketFor(1024), 0);
  EXPECT_EQ(protocol::FetchBucketFor(1025), 1);
  EXPECT_EQ(protocol::FetchBucketFor(protocol::kFetchBucketBase << (protocol::kFetchBuckets - 1)),
            protocol::kFetchBuckets - 1);
  EXPECT_EQ(protocol::FetchBucketFor(UINT64_MAX), protocol::kFetchBuckets);
}

}  // namespace
}  // namespace kvt::daemon
