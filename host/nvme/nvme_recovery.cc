// NvmeTier start-up: open the segment files, rebuild the index by scanning them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "host/nvme/nvme_tier.h"
#include "host/nvme/segment_format.h"

namespace kvt::nvme {

using tiering::ChunkKey;
using tiering::TransferPriority;

namespace {
constexpr uint64_t kScanWindow = 4ull << 20;
}  // namespace

Status NvmeTier::OpenSegmentFile(Segment& s, bool create) {
  const std::string path = SegmentPath(s.id);
  int flags = O_RDWR | O_CLOEXEC | (direct_ ? O_DIRECT : 0) | (create ? O_CREAT : 0);
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat " + path, errno);
  const uint64_t want = options_.segment_bytes;
  if (static_cast<uint64_t>(st.st_size) > want) {
    // Larger than a segment (a different configuration): cut it, capacity is a hard limit.
    if (::ftruncate(fd.get(), static_cast<off_t>(want)) != 0) return ErrnoStatus("ftruncate " + path, errno);
  }
  if (!create && static_cast<uint64_t>(st.st_size) < want) {
    spdlog::warn("nvme: segment file {} is {} bytes, shorter than a segment: restoring its size (records past "
                 "the cut are lost)", path, st.st_size);
  }
  // Preallocate the whole segment: appends never extend the file, so no metadata to sync on write
  // and no ENOSPC halfway through a segment.
  int rc = ::fallocate(fd.get(), 0, 0, static_cast<off_t>(want));
  if (rc != 0) {
    int err = errno;
    if (err != EOPNOTSUPP) return ErrnoStatus("fallocate " + path, err);
    if (::ftruncate(fd.get(), static_cast<off_t>(want)) != 0) return ErrnoStatus("ftruncate " + path, errno);
  }
  s.fd = std::move(fd);
  return Status::Ok();
}

Status NvmeTier::WriteSegmentHeader(Segment& s, uint64_t generation) {
  auto buf = StagingPool::AllocateUnpooled(kBlockBytes);
  if (!buf) return ResourceExhausted("no memory for a segment header");
  std::memset(buf->data(), 0, kBlockBytes);
  SegmentHeader h = MakeSegmentHeader(s.id, generation, options_.segment_bytes);
  std::memcpy(buf->data(), &h, sizeof h);
  IoRequest r;
  r.op = IoRequest::Op::kWrite;
  r.fd = s.fd.get();
  r.buf = buf->data();
  r.len = kBlockBytes;
  r.offset = 0;
  queue_->Run(std::span<IoRequest>(&r, 1));
  return IoResultStatus(r).WithContext("segment " + std::to_string(s.id) + " header");
}

void NvmeTier::ScanSegment(Segment& s, std::unordered_map<ChunkKey, Location, tiering::ChunkKeyHash>* found,
                           std::vector<std::pair<ChunkKey, Location>>* losers) {
  const uint64_t seg = options_.segment_bytes;
  auto win = StagingPool::AllocateUnpooled(kScanWindow);
  if (!win) return;
  uint64_t win_off = 0, win_len = 0;
  auto read = [&](char* into, uint64_t off, uint64_t len) {
    IoRequest r;
    r.fd = s.fd.get();
    r.buf = into;
    r.len = static_cast<uint32_t>(len);
    r.offset = off;
    queue_->Run(std::span<IoRequest>(&r, 1));
    Status st = IoResultStatus(r);
    if (!st.ok()) {
      metrics_.read_errors.Increment();
      spdlog::warn("nvme: scanning segment {}: {}", s.id, st.ToString());
    }
    return st.ok();
  };
  auto load = [&](uint64_t off) {
    uint64_t len = std::min(kScanWindow, seg - off);
    if (!read(win->data(), off, len)) return false;
    win_off = off;
    win_len = len;
    return true;
  };
  uint64_t o = kBlockBytes, end = kBlockBytes;
  while (o + kBlockBytes <= seg) {
    if (o < win_off || o + kBlockBytes > win_off + win_len) {
      if (!load(o)) break;
    }
    const char* p = win->data() + (o - win_off);
    auto meta = ParseSegmentRecord(p, s.generation, seg - o);
    if (!meta) {
      o += kBlockBytes;  // garbage, a stale record, or a hole left by a failed write: skip a block
      continue;
    }
    const uint64_t rb = RecordBytes(meta->payload_bytes);
    const char* payload = nullptr;
    std::unique_ptr<IoBuffer> big;
    if (o + rb <= win_off + win_len) {
      payload = p + kRecordPayloadOffset;
    } else if (rb <= kScanWindow) {
      if (!load(o)) break;
      payload = win->data() + kRecordPayloadOffset;
    } else {
      big = StagingPool::AllocateUnpooled(rb);
      if (!big || !read(big->data(), o, rb)) break;
      payload = big->data() + kRecordPayloadOffset;
    }
    if (tiering::RecordPayloadChecksum(payload, meta->payload_bytes) != meta->payload_xxh3) {
      metrics_.torn_records.Increment();
      o += kBlockBytes;
      continue;
    }
    Location loc;
    loc.segment = s.id;
    loc.generation = s.generation;
    loc.offset = o;
    loc.record_bytes = rb;
    loc.payload_bytes = meta->payload_bytes;
    loc.fingerprint = meta->fingerprint;
    loc.sequence = meta->sequence;
    Location& slot = (*found)[meta->key];
    if (slot.record_bytes == 0) {
      slot = loc;
    } else if (slot.sequence < loc.sequence) {
      losers->emplace_back(meta->key, slot);
      slot = loc;
    } else {
      losers->emplace_back(meta->key, loc);
    }
    s.keys.push_back(meta->key);
    next_sequence_ = std::max(next_sequence_, meta->sequence + 1);
    o += rb;
    end = o;
  }
  s.write_end = end;
}

Status NvmeTier::Recover() {
  namespace fs = std::filesystem;
  // Files beyond the configured number of segments (the capacity was lowered): removed, so the
  // directory never holds more than the capacity.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.dir, ec)) {
    unsigned id;
    char tail;
    std::string name = entry.path().filename().string();
    if (std::sscanf(name.c_str(), "seg-%u.kv%c", &id, &tail) == 2 && id >= segments_.size()) {
      spdlog::info("nvme: removing {} (beyond the configured capacity)", name);
      fs::remove(entry.path(), ec);
    }
  }
  std::unordered_map<ChunkKey, Location, tiering::ChunkKeyHash> found;
  // Valid records that another record of their key outranks (a crash between a compaction's
  // copies and the rewrite of its segment's header leaves two): erased once the tier is up, so
  // that a removal of the key, which erases the indexed record, leaves no copy to come back.
  std::vector<std::pair<ChunkKey, Location>> losers;
  auto header = StagingPool::AllocateUnpooled(kBlockBytes);
  if (!header) return ResourceExhausted("no memory for the NVMe scan");
  uint64_t fresh_headers = 0;
  for (auto& s : segments_) {
    if (::access(SegmentPath(s.id).c_str(), F_OK) != 0) continue;  // kAbsent: created on demand
    Status st = OpenSegmentFile(s, /*create=*/false);
    if (!st.ok()) {
      spdlog::warn("nvme: segment {} unusable: {}", s.id, st.ToString());
      metrics_.read_errors.Increment();
      s.state = SegmentState::kBroken;
      continue;
    }
    IoRequest r;
    r.fd = s.fd.get();
    r.buf = header->data();
    r.len = kBlockBytes;
    r.offset = 0;
    queue_->Run(std::span<IoRequest>(&r, 1));
    auto h = IoResultStatus(r).ok() ? ParseSegmentHeader(header->data(), s.id, options_.segment_bytes) : std::nullopt;
    if (!h) {
      // Never initialized, or the header itself is damaged: start the segment over.
      st = WriteSegmentHeader(s, 1);
      if (!st.ok()) {
        metrics_.write_errors.Increment();
        s.state = SegmentState::kBroken;
        continue;
      }
      s.generation = 1;
      s.write_end = kBlockBytes;
      s.state = SegmentState::kFree;
      s.dirty = true;
      ++fresh_headers;
      continue;
    }
    s.generation = h->generation;
    ScanSegment(s, &found, &losers);
    s.state = s.write_end > kBlockBytes ? SegmentState::kSealed : SegmentState::kFree;
    if (s.state == SegmentState::kSealed) s.sealed_order = ++seal_counter_;
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, loc] : found) IndexInsertLocked(key, loc);
    for (const auto& [key, loc] : losers) {
      PendingPtr erase = MakeEraseLocked(key, loc, next_ticket_++);
      inflight_tickets_.insert(erase->ticket);
      write_queue_.push_back(std::move(erase));
    }
  }
  for (size_t i = 0; i < losers.size(); i += kWriteBatch) {
    scheduler_->Submit(TransferPriority::kWriteBack, [this] { WriteBatch(); });
  }
  if (!losers.empty()) spdlog::info("nvme: erasing {} outranked copies of recovered chunks", losers.size());
  metrics_.recovered_chunks.Increment(static_cast<double>(found.size()));
  if (fresh_headers) spdlog::info("nvme: initialized {} segment headers", fresh_headers);
  return Status::Ok();
}

}  // namespace kvt::nvme
