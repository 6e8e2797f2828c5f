// The segment layout of the NVMe tier (docs/nvme-format.md describes it for operators). The
// 128-byte record header itself is tiering/record_header.h, shared with the remote tier.
//
// A segment file is `segment_bytes` long (preallocated with fallocate). Its first 4 KiB block
// holds a SegmentHeader; records follow, each starting on a 4 KiB boundary:
//
//   [header block 4 KiB: tiering::RecordHeader 128 B, zeros][payload][padding to 4 KiB]
//
// The header has a block of its own so that the payload can go to and from the disk straight
// from a 4 KiB-aligned host-arena slot with O_DIRECT (one write of the header block, one of the
// slot), with no copy into a staging buffer.
//
// A record belongs to the segment's current life when its header carries the generation of the
// segment header; the generation grows each time the segment is reclaimed, so records of an
// earlier life of the file are never mistaken for current ones. All integers little-endian.
#pragma once

#include <cstdint>
#include <optional>

#include "tiering/record_header.h"

namespace kvt::nvme {

inline constexpr uint64_t kBlockBytes = 4096;
inline constexpr uint32_t kSegmentMagic = 0x5345564bu;  // "KVES"
// 2: the record header has a 4 KiB block of its own (1 had the payload right after it).
inline constexpr uint16_t kSegmentFormatVersion = 2;
// Where a record's payload starts, from the start of the record.
inline constexpr uint64_t kRecordPayloadOffset = kBlockBytes;

struct SegmentHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t header_bytes;   // sizeof(SegmentHeader)
  uint32_t segment_id;
  uint32_t reserved0;
  uint64_t generation;
  uint64_t segment_bytes;
  uint64_t reserved[3];
  uint64_t header_xxh3;    // XXH3-64 of this struct with this field zero
};
static_assert(sizeof(SegmentHeader) == 64);
static_assert(tiering::kRecordHeaderBytes <= kBlockBytes);

inline uint64_t RoundUpBlock(uint64_t bytes) { return (bytes + kBlockBytes - 1) & ~(kBlockBytes - 1); }
// On-disk size of a record with `payload_bytes` of payload.
inline uint64_t RecordBytes(uint64_t payload_bytes) { return kRecordPayloadOffset + RoundUpBlock(payload_bytes); }

SegmentHeader MakeSegmentHeader(uint32_t segment_id, uint64_t generation, uint64_t segment_bytes);
// The header if `block` holds a valid one for this segment id and size (and this format version).
std::optional<SegmentHeader> ParseSegmentHeader(const void* block, uint32_t segment_id, uint64_t segment_bytes);

// The record's metadata if `p` holds a record header (tiering::DecodeRecordHeader says kOk) of
// segment generation `generation`, with a non-empty payload, whose record fits in `room` bytes;
// nullopt for anything else (torn, stale, another life of the segment, garbage, a zeroed header).
std::optional<tiering::RecordMeta> ParseSegmentRecord(const void* p, uint64_t generation, uint64_t room);

}  // namespace kvt::nvme
