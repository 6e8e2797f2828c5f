// The layout of one client's shared region (a sealed memfd created by the daemon):
//
//   [sq: RingHeader + SubmissionEntry[n]] [cq: RingHeader + CompletionEntry[n]]
//   [messages: char[n][kMessageMax]] [heap: heap_bytes, 4 KiB aligned]
//
// Both sides compute it with RegionLayout::For; the daemon sends the offsets in HelloReply and
// the client checks that they match its own computation.
#pragma once

#include <cstdint>

#include "protocol/handshake.h"
#include "protocol/ops.h"
#include "protocol/spsc_ring.h"

namespace kvt::protocol {

inline constexpr uint64_t kPageBytes = 4096;

constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

struct RegionLayout {
  uint32_t ring_entries = 0;
  uint64_t sq_offset = 0;
  uint64_t cq_offset = 0;
  uint64_t messages_offset = 0;
  uint64_t heap_offset = 0;
  uint64_t heap_bytes = 0;
  uint64_t total_bytes = 0;

  static constexpr RegionLayout For(uint32_t ring_entries, uint64_t heap_bytes) {
    RegionLayout l;
    l.ring_entries = ring_entries;
    l.sq_offset = 0;
    l.cq_offset = AlignUp(l.sq_offset + SpscRing<SubmissionEntry>::BytesFor(ring_entries), 64);
    l.messages_offset = AlignUp(l.cq_offset + SpscRing<CompletionEntry>::BytesFor(ring_entries), 64);
    l.heap_offset = AlignUp(l.messages_offset + uint64_t{ring_entries} * kMessageMax, kPageBytes);
    l.heap_bytes = AlignUp(heap_bytes, kPageBytes);
    l.total_bytes = l.heap_offset + l.heap_bytes;
    return l;
  }
};

}  // namespace kvt::protocol
