// SequenceStatsBlock — the sequence-plane figures one client reports to the daemon.
//
// Sequences run inside the client's process (libkvtier), so the daemon cannot measure them. A
// client that attaches sequences to its connection places one SequenceStatsBlock in its shared
// heap, fills magic and version, and registers it with Opcode::kRegisterSequenceStats. From then
// on the client updates the fields with relaxed atomic adds (several sequences and threads may
// share the block) and the daemon reads them with relaxed atomic loads when it is scraped; there
// is no round trip on the decode path.
//
// The daemon treats every value as untrusted: a wrong magic or version reads as "nothing to
// report", gauges are clamped to [0, limit], and counters are made monotonic per session (the
// largest value seen), so a client writing garbage skews its own figures and nothing else.
//
// Gauges are updated with signed deltas through unsigned wrap-around (read them as int64).
// Policies are indexed like sequence::LayerKind and kvt_layer_policy_t: full, offload, kivi, sparse.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvt::protocol {

inline constexpr uint32_t kSequenceStatsMagic = 0x5353564b;  // "KVSS"
// Version 2 (protocol 1.3) appends host_tier_heap_bytes. A client registers version 2 with a
// daemon of protocol 1.3 or later and version 1 (the first kSequenceStatsV1Bytes) with an older
// one; the daemon reads each block as the version it was registered with.
inline constexpr uint32_t kSequenceStatsVersion = 2;
inline constexpr uint32_t kSequenceStatsVersion1 = 1;
inline constexpr int kSequencePolicies = 4;  // full, offload, kivi, sparse
inline constexpr const char* kSequencePolicyNames[kSequencePolicies] = {"full", "offload", "kivi", "sparse"};

// Histogram of the KV bytes fetched from the host tier for one decode step of one layer (the
// dominant tokens of a sparse layer, the whole layer for offload): bucket i counts steps with
// bytes <= kFetchBucketBase << i; the last bucket counts the rest (+Inf). 1 KiB .. 512 MiB.
inline constexpr int kFetchBuckets = 20;
inline constexpr uint64_t kFetchBucketBase = 1024;

constexpr int FetchBucketFor(uint64_t bytes) {
  int i = 0;
  while (i < kFetchBuckets && bytes > (kFetchBucketBase << i)) ++i;
  return i;
}

struct SequenceStatsPolicy {
  uint64_t bytes;                            // gauge: KV bytes held by layers of this policy, all tiers
  uint64_t layer_tokens;                     // gauge: tokens those layers hold, summed over layers
  uint64_t fetch_steps[kFetchBuckets + 1];   // counters: steps per bucket (not cumulative)
  uint64_t fetch_bytes;                      // counter: bytes those steps fetched
  uint64_t transfer_hidden_ns;               // counter: transfer time that overlapped compute
  uint64_t transfer_exposed_ns;              // counter: transfer time a decode step waited for
};

struct SequenceStatsBlock {
  uint32_t magic;    // kSequenceStatsMagic
  uint32_t version;  // kSequenceStatsVersion
  uint64_t sequences;  // gauge: open sequences attached to this connection (live or suspended)
  SequenceStatsPolicy policy[kSequencePolicies];
  // Version 2: gauge, bytes of this client's shared heap held by the host tiers of its in-client
  // sequences (kvt_sequence_open_in_client): part of heap_bytes the client cannot use otherwise.
  uint64_t host_tier_heap_bytes;
};
static_assert(sizeof(SequenceStatsPolicy) == 8 * 26);
inline constexpr size_t kSequenceStatsV1Bytes = 16 + kSequencePolicies * sizeof(SequenceStatsPolicy);
static_assert(sizeof(SequenceStatsBlock) == kSequenceStatsV1Bytes + 8);

// The bytes of a block of `version` (0 for a version this build does not know).
constexpr size_t SequenceStatsBytes(uint32_t version) {
  return version == kSequenceStatsVersion ? sizeof(SequenceStatsBlock)
         : version == kSequenceStatsVersion1 ? kSequenceStatsV1Bytes
                                             : 0;
}
static_assert(alignof(SequenceStatsBlock) == 8);

}  // namespace kvt::protocol
