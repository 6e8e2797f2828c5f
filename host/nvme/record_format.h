// The on-disk format of the NVMe tier (docs/nvme-format.md describes it for operators).
//
// A segment file is `segment_bytes` long (preallocated with fallocate). Its first 4 KiB block
// holds a SegmentHeader; records follow, each starting on a 4 KiB boundary:
//
//   [RecordHeader 128 B][payload][zero padding to the next 4 KiB boundary]
//
// Every header carries its own checksum (XXH3-64 of the header with the checksum field zeroed);
// a record header carries the XXH3-64 of its payload and the generation of the segment it was
// written into. A segment's generation grows each time the segment is reclaimed, so records of an
// earlier life of the file are never mistaken for current ones. All integers little-endian.
#pragma once

#include <cstdint>
#include <optional>

#include "tiering/chunk_key.h"

namespace kvt::nvme {

inline constexpr uint64_t kBlockBytes = 4096;
inline constexpr uint32_t kSegmentMagic = 0x5345564bu;  // "KVES"
inline constexpr uint32_t kRecordMagic = 0x5252564bu;   // "KVRR"
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr uint64_t kRecordHeaderBytes = 128;

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

struct RecordHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t header_bytes;   // kRecordHeaderBytes
  uint32_t flags;          // 0
  uint32_t reserved0;
  uint64_t generation;     // of the segment when written
  uint64_t sequence;       // tier-wide, increasing: the later copy of a key wins on recovery
  uint64_t key_lo, key_hi;
  uint64_t fingerprint_lo, fingerprint_hi;
  uint64_t payload_bytes;
  uint64_t payload_xxh3;
  uint64_t reserved[5];
  uint64_t header_xxh3;    // XXH3-64 of this struct with this field zero
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

inline uint64_t RoundUpBlock(uint64_t bytes) { return (bytes + kBlockBytes - 1) & ~(kBlockBytes - 1); }
inline uint64_t RecordBytes(uint64_t payload_bytes) { return RoundUpBlock(kRecordHeaderBytes + payload_bytes); }

uint64_t PayloadChecksum(const void* payload, uint64_t bytes);

SegmentHeader MakeSegmentHeader(uint32_t segment_id, uint64_t generation, uint64_t segment_bytes);
// The header if `block` holds a valid one for this segment id and size.
std::optional<SegmentHeader> ParseSegmentHeader(const void* block, uint32_t segment_id, uint64_t segment_bytes);

struct RecordMeta {
  tiering::ChunkKey key;
  tiering::Fingerprint fingerprint;
  uint64_t generation = 0;
  uint64_t sequence = 0;
  uint64_t payload_bytes = 0;
  uint64_t payload_xxh3 = 0;
};

// Writes the header for `meta` (payload_xxh3 already computed) at `out`.
void EncodeRecordHeader(const RecordMeta& meta, void* out);
// The record's metadata if `p` holds a well-formed header of generation `generation` whose
// record fits in `room` bytes; nullopt for anything else (torn, stale, garbage).
std::optional<RecordMeta> ParseRecordHeader(const void* p, uint64_t generation, uint64_t room);

}  // namespace kvt::nvme
