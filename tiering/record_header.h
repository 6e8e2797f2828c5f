// RecordHeader — the 128-byte header that every chunk carries when it leaves the host tier: in an
// NVMe record (host/nvme) and as the first bytes of a remote value (host/remote).
//
//   [RecordHeader 128 B][payload]
//
// The layout is byte for byte the NVMe branch's nvme::RecordHeader (magic "KVRR", format version 1,
// header_bytes 128, XXH3-64 of the payload, XXH3-64 of the header with its own checksum field
// zeroed, all integers little-endian), so one codec serves both tiers: a value written by one
// tier verifies in the other. Fields a tier does not use are zero (the remote tier writes
// generation 0 and, as sequence, the writer's wall-clock time in milliseconds).
//
// Decode checks only what the header says about itself (magic, version, size, checksum); whether
// it is the record the caller wanted (key, namespace, length, payload checksum) is the caller's
// check, because only the caller knows what it asked for. Pure functions; thread-safe.
#pragma once

#include <cstdint>

#include "tiering/chunk_key.h"

namespace kvt::tiering {

inline constexpr uint32_t kRecordMagic = 0x5252564bu;  // "KVRR"
inline constexpr uint16_t kRecordFormatVersion = 1;
inline constexpr uint64_t kRecordHeaderBytes = 128;

struct RecordHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t header_bytes;   // kRecordHeaderBytes
  uint32_t flags;          // 0
  uint32_t reserved0;
  uint64_t generation;     // NVMe: generation of the segment; remote: 0
  uint64_t sequence;       // NVMe: tier-wide write order; remote: writer wall clock, ms
  uint64_t key_lo, key_hi;
  uint64_t fingerprint_lo, fingerprint_hi;
  uint64_t payload_bytes;
  uint64_t payload_xxh3;
  uint64_t reserved[5];
  uint64_t header_xxh3;    // XXH3-64 of this struct with this field zero
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

struct RecordMeta {
  ChunkKey key;
  Fingerprint fingerprint;
  uint64_t generation = 0;
  uint64_t sequence = 0;
  uint64_t payload_bytes = 0;
  uint64_t payload_xxh3 = 0;
};

enum class RecordCheck {
  kOk,
  kCorrupt,  // not a header at all, or its checksum fails
  kStale,    // a well-formed header of another format version
};

uint64_t RecordPayloadChecksum(const void* payload, uint64_t bytes);

// Writes the header for `meta` (payload_xxh3 already computed) to out[0, kRecordHeaderBytes).
void EncodeRecordHeader(const RecordMeta& meta, void* out);

// Parses out[0, kRecordHeaderBytes) of `p`; `available` is how many bytes `p` holds.
RecordCheck DecodeRecordHeader(const void* p, uint64_t available, RecordMeta* meta);

}  // namespace kvt::tiering
