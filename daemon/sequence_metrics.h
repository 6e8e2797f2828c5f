// SequenceMetrics — the sequence plane's figures, as clients report them (protocol/sequence_stats.h).
//
// Sequences run in the clients' processes; each client that attaches sequences registers one
// SequenceStatsBlock in its shared heap, and this Collectable reads every registered block when
// Prometheus scrapes (and for kStats). It exports, with bounded labels (tenant, policy, overlap):
//   kvt_sequences{tenant}                           gauge      open attached sequences
//   kvt_policy_bytes_per_token{policy}              gauge      KV bytes held per token and layer
//   kvt_dominant_token_bytes_per_step{policy}       histogram  bytes fetched from the host tier per
//                                                              decode step and layer
//   kvt_transfer_seconds_total{policy,overlap}      counter    transfer time, overlap = hidden
//                                                              (behind compute) | exposed (waited for)
//   kvt_sequence_host_tier_heap_bytes{tenant}       gauge      shared-heap bytes held by the host
//                                                              tiers of in-client sequences
//                                                              (block version 2)
//
// The blocks are untrusted client memory: read with relaxed atomic loads, a wrong magic or
// version reads as empty, gauges are clamped, and each counter is the largest value seen for its
// session (so it never goes down, whatever the client writes). When a session ends, its counters
// are folded into a retired total under the same lock that removes it, so no sum ever dips.
//
// Threading: Source::SetBlock on the session's ring thread; everything else from any thread.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "protocol/sequence_stats.h"

namespace kvt::daemon {

// Figures validated and clamped; also used for sums.
struct SequenceFigures {
  struct Policy {
    uint64_t bytes = 0;
    uint64_t layer_tokens = 0;
    uint64_t fetch_steps[protocol::kFetchBuckets + 1] = {};
    uint64_t fetch_bytes = 0;
    uint64_t hidden_ns = 0;
    uint64_t exposed_ns = 0;
    uint64_t steps() const;
  };
  uint64_t sequences = 0;
  uint64_t host_tier_heap_bytes = 0;  // 0 from a version-1 block
  Policy policy[protocol::kSequencePolicies];

  void AddGauges(const SequenceFigures& other);    // saturating
  void AddCounters(const SequenceFigures& other);  // saturating
  void KeepLargerCounters(const SequenceFigures& other);
};

// Limits of what one client may claim; beyond them a value is clamped.
inline constexpr uint64_t kMaxSequencesPerClient = uint64_t{1} << 20;
inline constexpr uint64_t kMaxReportedBytes = uint64_t{1} << 50;
inline constexpr uint64_t kMaxReportedTokens = uint64_t{1} << 40;
inline constexpr uint64_t kMaxReportedCounter = uint64_t{1} << 53;  // exact as a double

// Reads a block the client may be writing, registered as `version`: `block` must be 8-aligned with
// protocol::SequenceStatsBytes(version) readable bytes (the caller checked they lie in the heap).
// Nothing past those bytes is read, whatever the client writes into the version field later; a
// version field that no longer says `version` reads as empty.
SequenceFigures ReadSequenceStatsBlock(const void* block, uint32_t version);

class SequenceMetrics : public prometheus::Collectable {
 public:
  // One session's reporting: owned by the session, added while the session lives.
  class Source {
   public:
    explicit Source(std::string tenant) : tenant_(std::move(tenant)) {}
    // The registered block of `version` (validated by the caller); replaces an earlier one.
    void SetBlock(const void* block, uint32_t version) {
      version_.store(version, std::memory_order_relaxed);
      block_.store(block, std::memory_order_release);
    }
    const std::string& tenant() const { return tenant_; }

   private:
    friend class SequenceMetrics;
    std::string tenant_;
    std::atomic<uint32_t> version_{0};  // published before block_ (release/acquire)
    std::atomic<const void*> block_{nullptr};
    SequenceFigures seen_;  // counters: the largest seen; guarded by SequenceMetrics::mu_
  };

  void Add(Source* source);
  // Folds the source's counters (read once more) into the retired totals and forgets it; the
  // block's memory may go away afterwards. Idempotent.
  void Retire(Source* source);

  // Gauges of the live sources; counters of live and retired ones.
  SequenceFigures Totals() const;
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  SequenceFigures ReadLocked(Source* source) const;

  mutable std::mutex mu_;
  std::set<Source*> live_;
  SequenceFigures retired_;  // counters only
};

}  // namespace kvt::daemon
