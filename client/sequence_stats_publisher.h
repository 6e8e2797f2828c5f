// SequenceStatsPublisher — where the sequences attached to one client write the figures the daemon
// exports for them (protocol/sequence_stats.h): one SequenceStatsBlock in the client's shared heap,
// registered with the daemon once.
//
// Ownership: created by the client (kvt_client_t) on the first kvt_sequence_attach and shared with
// every attached sequence; Detach() (called when the client closes) stops all writes, so a sequence
// that outlives its client keeps working and simply stops reporting.
// Threading: every method may be called from any thread; updates are relaxed atomic adds under a
// short mutex that only orders them against Detach.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "client/connection.h"
#include "common/status_or.h"
#include "protocol/sequence_stats.h"

namespace kvt::client {

class SequenceStatsPublisher {
 public:
  // Allocates the block in `connection`'s heap and registers it: version 2 with a daemon of
  // protocol 1.3 or later, version 1 (no host_tier_heap_bytes) with 1.1 and 1.2. UNSUPPORTED from a
  // daemon older than protocol 1.1.
  static StatusOr<std::shared_ptr<SequenceStatsPublisher>> Create(Connection& connection);

  // One update of the figures of a single sequence; everything is a delta.
  struct Delta {
    int64_t sequences = 0;
    int64_t host_tier_heap_bytes = 0;  // dropped when the block is version 1
    int64_t bytes[protocol::kSequencePolicies] = {};
    int64_t layer_tokens[protocol::kSequencePolicies] = {};
    int64_t hidden_ns[protocol::kSequencePolicies] = {};
    int64_t exposed_ns[protocol::kSequencePolicies] = {};
    // One decode step of one layer of this policy that fetched fetch_bytes from the host tier.
    int fetch_policy = -1;
    uint64_t fetch_bytes = 0;
    bool Empty() const;
  };
  void Apply(const Delta& delta);

  // After this nothing is written; the heap block is the connection's to free.
  void Detach();

 private:
  SequenceStatsPublisher(protocol::SequenceStatsBlock* block, bool has_heap_field)
      : block_(block), has_heap_field_(has_heap_field) {}

  std::mutex mu_;
  protocol::SequenceStatsBlock* block_;  // null once detached
  const bool has_heap_field_;            // registered as version 2
};

}  // namespace kvt::client
