// The NVMe tier's start-up scan (host/nvme/nvme_recovery.cc) over a segment file of records laid
// out by the input: torn, stale, of another generation, corrupt in header or payload, duplicated
// with older and newer sequences, with garbage between them — what a crash, a bad disk or a
// restore from a backup leaves behind.
//
// Input: [segment byte][16-byte record descriptors...]. The target writes segment 0 (a valid
// header of generation 1 when bit 0 of the segment byte is set) and one record per descriptor,
// with correct checksums unless the descriptor damages them, so that the scan's checks past the
// checksums are reached. Property (the model): a key is recovered iff some record of it is
// intact, of the segment's generation, and reachable; NvmeTier::Read then returns exactly the
// payload of its highest-sequence such record (the first one on a tie), and any other key misses.
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "host/nvme/nvme_tier.h"
#include "host/nvme/segment_format.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/support/temp_dir.h"
#include "tiering/record_header.h"

namespace {

namespace nv = kvt::nvme;
using kvt::tiering::ChunkKey;

constexpr uint64_t kSegmentBytes = 1ull << 20;
constexpr int kKeys = 8;
const ChunkKey kFingerprint{0x5eed, 0xf00d};

// One record as the input describes it.
struct Descriptor {
  uint8_t flags;         // bit 0 corrupt header, 1 corrupt payload, 2 other generation, 3 stale format
  uint8_t key;           // mod kKeys
  uint16_t payload;      // payload bytes - 1, mod 3 blocks
  uint32_t sequence;
  uint16_t gap_blocks;   // zero blocks before the record, mod 4
  uint8_t fill;          // payload pattern
  uint8_t reserved[5];
};
static_assert(sizeof(Descriptor) == 16);

const std::string& Dir() {
  static const kvt::testing::TempDir dir = [] {
    spdlog::set_level(spdlog::level::err);  // every input logs its torn records; once, not per input
    return kvt::testing::TempDir();
  }();
  return dir.path();
}

std::vector<uint8_t> Payload(const Descriptor& d, uint64_t bytes) {
  std::vector<uint8_t> p(bytes);
  for (uint64_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(d.fill + i * 7);
  return p;
}

std::vector<uint8_t> Input(uint8_t segment, const std::vector<Descriptor>& records) {
  std::vector<uint8_t> in(1 + records.size() * sizeof(Descriptor));
  in[0] = segment;
  std::memcpy(in.data() + 1, records.data(), records.size() * sizeof(Descriptor));
  return in;
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  auto d = [](uint8_t flags, uint8_t key, uint16_t payload, uint32_t sequence, uint16_t gap, uint8_t fill) {
    return Descriptor{flags, key, payload, sequence, gap, fill, {}};
  };
  return {
      // Three keys, one rewritten with a newer sequence, one torn copy, one of an older life.
      Input(1, {d(0, 0, 4095, 1, 0, 1), d(0, 1, 100, 2, 1, 2), d(0, 0, 8191, 5, 0, 3), d(2, 2, 10, 9, 0, 4),
                d(1, 1, 500, 7, 2, 5), d(0, 3, 12287, 3, 0, 6), d(0, 3, 12287, 3, 0, 7)}),
      // A damaged payload and a stale format between intact records; no valid segment header.
      Input(1, {d(0, 4, 1, 1, 0, 8), d(2 | 1, 5, 2000, 2, 0, 9), d(8, 6, 300, 3, 1, 10), d(0, 7, 4096, 4, 0, 11)}),
      Input(0, {d(0, 0, 4095, 1, 0, 1), d(0, 1, 100, 2, 1, 2)}),
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string dir = Dir();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) std::filesystem::remove(e.path(), ec);

  // Segment 0 as the descriptors say, and the model of what recovery must find.
  const bool valid_segment = (data[0] & 1) != 0;
  std::vector<uint8_t> segment(kSegmentBytes, 0);
  const nv::SegmentHeader header = nv::MakeSegmentHeader(0, 1, kSegmentBytes);
  std::memcpy(segment.data(), &header, sizeof header);
  if (!valid_segment) segment[8] ^= 0xff;
  struct Expected { uint32_t sequence; std::vector<uint8_t> payload; };
  std::map<int, Expected> expected;
  uint64_t at = nv::kBlockBytes;
  for (size_t off = 1; off + sizeof(Descriptor) <= size; off += sizeof(Descriptor)) {
    Descriptor d;
    std::memcpy(&d, data + off, sizeof d);
    at += (d.gap_blocks % 4) * nv::kBlockBytes;
    const uint64_t payload_bytes = 1 + d.payload % (3 * nv::kBlockBytes);
    const uint64_t record_bytes = nv::RecordBytes(payload_bytes);
    if (at + record_bytes > kSegmentBytes) break;
    const std::vector<uint8_t> payload = Payload(d, payload_bytes);
    kvt::tiering::RecordMeta meta;
    meta.key = ChunkKey{uint64_t{d.key} % kKeys + 1, 0};
    meta.fingerprint = kFingerprint;
    meta.generation = (d.flags & 4) ? 2 : 1;
    meta.sequence = d.sequence;
    meta.payload_bytes = payload_bytes;
    meta.payload_xxh3 = kvt::tiering::RecordPayloadChecksum(payload.data(), payload_bytes);
    kvt::tiering::EncodeRecordHeader(meta, segment.data() + at);
    if (d.flags & 8) segment[at + 4] ^= 0x7f;   // another format version (header checksum redone below)
    if (d.flags & 8) {
      auto* h = reinterpret_cast<kvt::tiering::RecordHeader*>(segment.data() + at);
      h->header_xxh3 = 0;
      h->header_xxh3 = XXH3_64bits(h, sizeof *h);
    }
    if (d.flags & 1) segment[at + 40] ^= 1;     // header checksum fails
    std::memcpy(segment.data() + at + nv::kRecordPayloadOffset, payload.data(), payload_bytes);
    if (d.flags & 2) segment[at + nv::kRecordPayloadOffset + payload_bytes / 2] ^= 0x10;  // payload fails
    const bool intact = valid_segment && (d.flags & (1 | 2 | 4 | 8)) == 0;
    if (intact) {
      const int key = d.key % kKeys;
      auto it = expected.find(key);
      if (it == expected.end() || it->second.sequence < d.sequence) expected[key] = {d.sequence, payload};
    }
    at += record_bytes;
  }
  {
    std::ofstream out(dir + "/seg-000000.kvt", std::ios::binary);
    out.write(reinterpret_cast<const char*>(segment.data()), static_cast<std::streamsize>(segment.size()));
    KVT_FUZZ_CHECK(out.good(), "writing the segment file");
  }

  prometheus::Registry registry;
  nv::NvmeTierOptions options;
  options.dir = dir;
  options.segment_bytes = kSegmentBytes;
  options.capacity_bytes = 4 * kSegmentBytes;  // three spare segments: no reclaim moves records while we read
  options.staging_bytes = 4ull << 20;
  options.flush_interval_ms = 0;
  options.io_workers = 2;
  options.prefetch_on_lookup = false;
  auto tier = nv::NvmeTier::Create(options, registry);
  KVT_FUZZ_CHECK(tier.ok(), "the tier starts over any segment contents: " + tier.status().ToString());
  for (int key = 0; key < kKeys; ++key) {
    const ChunkKey k{uint64_t(key) + 1, 0};
    auto it = expected.find(key);
    if (it == expected.end()) {
      KVT_FUZZ_CHECK(!(*tier)->Contains(k), "key " + std::to_string(key) + " has no intact record: not recovered");
      continue;
    }
    KVT_FUZZ_CHECK((*tier)->Contains(k), "key " + std::to_string(key) + " has an intact record: recovered");
    std::vector<uint8_t> out(it->second.payload.size());
    const kvt::Status s = (*tier)->Read(k, kFingerprint, out.data(), out.size(), kvt::tiering::TransferPriority::kDemand);
    KVT_FUZZ_CHECK(s.ok(), "reading recovered key " + std::to_string(key) + ": " + s.ToString());
    KVT_FUZZ_CHECK(out == it->second.payload, "key " + std::to_string(key) + " reads its newest intact record");
    kvt::fuzz::CountAccepted();
  }
  return 0;
}
