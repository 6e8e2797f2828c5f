#include "host/nvme/record_format.h"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace kvt::nvme {
namespace {

static_assert(std::endian::native == std::endian::little, "the on-disk format is little-endian");

template <typename T>
uint64_t HeaderChecksum(T copy) {
  copy.header_xxh3 = 0;
  return XXH3_64bits(&copy, sizeof copy);
}

}  // namespace

uint64_t PayloadChecksum(const void* payload, uint64_t bytes) { return XXH3_64bits(payload, bytes); }

SegmentHeader MakeSegmentHeader(uint32_t segment_id, uint64_t generation, uint64_t segment_bytes) {
  SegmentHeader h{};
  h.magic = kSegmentMagic;
  h.version = kFormatVersion;
  h.header_bytes = sizeof(SegmentHeader);
  h.segment_id = segment_id;
  h.generation = generation;
  h.segment_bytes = segment_bytes;
  h.header_xxh3 = HeaderChecksum(h);
  return h;
}

std::optional<SegmentHeader> ParseSegmentHeader(const void* block, uint32_t segment_id, uint64_t segment_bytes) {
  SegmentHeader h;
  std::memcpy(&h, block, sizeof h);
  if (h.magic != kSegmentMagic || h.version != kFormatVersion || h.header_bytes != sizeof h) return std::nullopt;
  if (h.header_xxh3 != HeaderChecksum(h)) return std::nullopt;
  if (h.segment_id != segment_id || h.segment_bytes != segment_bytes) return std::nullopt;
  return h;
}

void EncodeRecordHeader(const RecordMeta& m, void* out) {
  RecordHeader h{};
  h.magic = kRecordMagic;
  h.version = kFormatVersion;
  h.header_bytes = kRecordHeaderBytes;
  h.generation = m.generation;
  h.sequence = m.sequence;
  h.key_lo = m.key.lo;
  h.key_hi = m.key.hi;
  h.fingerprint_lo = m.fingerprint.lo;
  h.fingerprint_hi = m.fingerprint.hi;
  h.payload_bytes = m.payload_bytes;
  h.payload_xxh3 = m.payload_xxh3;
  h.header_xxh3 = HeaderChecksum(h);
  std::memcpy(out, &h, sizeof h);
}

std::optional<RecordMeta> ParseRecordHeader(const void* p, uint64_t generation, uint64_t room) {
  RecordHeader h;
  std::memcpy(&h, p, sizeof h);
  if (h.magic != kRecordMagic || h.version != kFormatVersion || h.header_bytes != kRecordHeaderBytes) {
    return std::nullopt;
  }
  if (h.header_xxh3 != HeaderChecksum(h)) return std::nullopt;
  if (h.generation != generation || h.flags != 0) return std::nullopt;
  if (h.payload_bytes == 0 || h.payload_bytes > room || RecordBytes(h.payload_bytes) > room) return std::nullopt;
  RecordMeta m;
  m.key = {h.key_lo, h.key_hi};
  m.fingerprint = {h.fingerprint_lo, h.fingerprint_hi};
  m.generation = h.generation;
  m.sequence = h.sequence;
  m.payload_bytes = h.payload_bytes;
  m.payload_xxh3 = h.payload_xxh3;
  return m;
}

}  // namespace kvt::nvme
