// SequenceReporter — what one attached sequence (kvt_sequence_attach) has reported to its client's
// SequenceStatsPublisher so far, so that every update is a delta: the block sums all the
// sequences of a client. Gauges (bytes and tokens per policy, the open-sequence count) are
// withdrawn by the destructor; counters (fetches, transfer time) are totals and stay. An in-client
// sequence also reports the shared-heap bytes its host tier holds (a gauge).
//
// Threading: used by the sequence's thread only (a kvt_sequence_t is used by one thread at a time).
// Cost: a call that cannot have changed anything returns after two virtual calls; otherwise one
// publisher lock, plus the transfer scheduler's for layers that move data (offload, sparse).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "client/heap_host_tier_memory.h"
#include "client/sequence_stats_publisher.h"
#include "sequence/sequence.h"

namespace kvt::client {

class SequenceReporter {
 public:
  // Reports from now on: fetches and transfer time before the attach are not counted.
  // `heap_memory`: the host tier of an in-client sequence (outlives this), else null.
  SequenceReporter(std::shared_ptr<SequenceStatsPublisher> publisher, sequence::Sequence& seq,
                   const HeapHostTierMemory* heap_memory = nullptr);
  ~SequenceReporter();
  SequenceReporter(const SequenceReporter&) = delete;
  SequenceReporter& operator=(const SequenceReporter&) = delete;

  // After a successful call that may have changed `layer` (append, attend, select, hint): its
  // gauges, for an attend/select (`step`) the bytes it fetched, then the transfer time accounted
  // since the last report. `layer` < 0: every layer (suspend, resume).
  void After(sequence::Sequence& seq, int layer, bool step);

 private:
  struct Layer {
    int policy = 0;
    uint64_t bytes = 0;
    uint64_t tokens = 0;
  };

  void Refresh(const sequence::Sequence& seq, SequenceStatsPublisher::Delta* d);
  void RefreshHeap(SequenceStatsPublisher::Delta* d);
  void RefreshLayer(const sequence::Sequence& seq, size_t l, SequenceStatsPublisher::Delta* d);

  std::shared_ptr<SequenceStatsPublisher> publisher_;
  const HeapHostTierMemory* heap_memory_;
  uint64_t heap_bytes_ = 0;  // reported so far
  std::vector<Layer> layers_;
  uint64_t fetched_ = 0;
  int64_t hidden_ns_[sequence::kLayerKinds] = {};
  int64_t exposed_ns_[sequence::kLayerKinds] = {};
};

}  // namespace kvt::client
