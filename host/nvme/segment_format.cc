#include "host/nvme/segment_format.h"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace kvt::nvme {
namespace {

static_assert(std::endian::native == std::endian::little, "the on-disk format is little-endian");

uint64_t HeaderChecksum(SegmentHeader copy) {
  copy.header_xxh3 = 0;
  return XXH3_64bits(&copy, sizeof copy);
}

}  // namespace

SegmentHeader MakeSegmentHeader(uint32_t segment_id, uint64_t generation, uint64_t segment_bytes) {
  SegmentHeader h{};
  h.magic = kSegmentMagic;
  h.version = kSegmentFormatVersion;
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
  if (h.magic != kSegmentMagic || h.version != kSegmentFormatVersion || h.header_bytes != sizeof h) {
    return std::nullopt;
  }
  if (h.header_xxh3 != HeaderChecksum(h)) return std::nullopt;
  if (h.segment_id != segment_id || h.segment_bytes != segment_bytes) return std::nullopt;
  return h;
}

std::optional<tiering::RecordMeta> ParseSegmentRecord(const void* p, uint64_t generation, uint64_t room) {
  tiering::RecordMeta m;
  if (tiering::DecodeRecordHeader(p, room, &m) != tiering::RecordCheck::kOk) return std::nullopt;
  if (m.generation != generation) return std::nullopt;
  if (m.payload_bytes == 0 || m.payload_bytes > room || RecordBytes(m.payload_bytes) > room) return std::nullopt;
  return m;
}

}  // namespace kvt::nvme
