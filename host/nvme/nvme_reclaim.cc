// NvmeTier space reclamation: compaction of mostly dead segments, eviction of the oldest.
#include <spdlog/spdlog.h>

#include "host/nvme/nvme_tier.h"
#include "host/nvme/segment_format.h"

namespace kvt::nvme {

using tiering::ChunkKey;
using tiering::TransferPriority;

namespace {
constexpr uint32_t kReclaimAt = 2;  // start reclaiming when this few segments are spare
}  // namespace

uint32_t NvmeTier::SpareSegmentsLocked() const {
  uint32_t n = 0;
  for (const auto& s : segments_) n += s.state == SegmentState::kFree || s.state == SegmentState::kAbsent;
  return n;
}

void NvmeTier::MaybeScheduleReclaimLocked() {
  if (reclaim_scheduled_ || disabled_ || SpareSegmentsLocked() > kReclaimAt) return;
  bool any = false;
  for (const auto& s : segments_) any |= s.state == SegmentState::kSealed && s.inflight == 0;
  if (!any) return;
  reclaim_scheduled_ = true;
  // At write-back priority, FIFO with the write-back that needs the space: below it, a burst of
  // write-back starves the reclaim and every write of the burst finds no segment.
  scheduler_->Submit(TransferPriority::kWriteBack, [this] { Reclaim(); });
}

void NvmeTier::Reclaim() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (disabled_ || SpareSegmentsLocked() > kReclaimAt) break;
    }
    if (!ReclaimOne()) break;
  }
  size_t parked;
  {
    std::lock_guard lock(mu_);
    reclaim_scheduled_ = false;
    // The writes that waited for this reclaim go first.
    parked = parked_.size();
    for (auto it = parked_.rbegin(); it != parked_.rend(); ++it) write_queue_.push_front(std::move(*it));
    parked_.clear();
  }
  for (size_t i = 0; i < parked; i += kWriteBatch) scheduler_->Submit(TransferPriority::kWriteBack, [this] { WriteBatch(); });
}

bool NvmeTier::ReclaimOne() {
  uint32_t id;
  uint64_t generation;
  bool compact;
  std::vector<std::pair<ChunkKey, Location>> live;
  {
    std::lock_guard lock(mu_);
    Segment* least = nullptr;
    Segment* oldest = nullptr;
    for (auto& s : segments_) {
      if (s.state != SegmentState::kSealed || s.inflight != 0) continue;
      if (!least || s.live_bytes < least->live_bytes) least = &s;
      if (!oldest || s.sealed_order < oldest->sealed_order) oldest = &s;
    }
    if (!least) return false;
    const double room = static_cast<double>(options_.segment_bytes - kBlockBytes);
    compact = static_cast<double>(least->live_bytes) <= options_.compaction_threshold * room;
    Segment& v = compact ? *least : *oldest;
    v.state = SegmentState::kReclaiming;
    id = v.id;
    generation = v.generation;
    for (const ChunkKey& key : v.keys) {
      auto it = index_.find(key);
      if (it != index_.end() && it->second.segment == id && it->second.generation == generation) {
        live.emplace_back(key, it->second);
      }
    }
  }
  if (compact) {
    std::vector<PendingPtr> batch;
    for (const auto& [key, loc] : live) {
      {
        std::lock_guard lock(mu_);
        auto it = index_.find(key);
        if (it == index_.end() || it->second.sequence != loc.sequence) continue;  // removed meanwhile
        ++segments_[id].readers;
      }
      auto buf = ReadRecord(key, loc, TransferPriority::kBackground, Deadline::After(std::chrono::seconds(30)));
      if (!buf.ok()) {
        if (buf.status().code() == StatusCode::kCorruption) {
          metrics_.checksum_failures.Increment();
          spdlog::warn("nvme: compaction: {}; dropping the record", buf.status().message());
        }
        continue;  // left at the victim: evicted below
      }
      auto w = std::make_shared<PendingWrite>();
      w->key = key;
      w->fingerprint = loc.fingerprint;
      w->payload_bytes = loc.payload_bytes;
      w->buf = std::move(*buf);
      w->kind = WriteKind::kCompaction;
      w->sequence = loc.sequence;
      batch.push_back(std::move(w));
      if (batch.size() == 16) {
        WriteRecords(batch);
        batch.clear();
      }
    }
    if (!batch.empty()) WriteRecords(batch);
    // The copies must be durable before the originals become unreachable.
    Status st = SyncDirty();
    if (!st.ok()) {
      spdlog::warn("nvme: compaction of segment {} abandoned: {}", id, st.ToString());
      std::lock_guard lock(mu_);
      segments_[id].state = SegmentState::kSealed;
      return false;
    }
  }
  {
    std::unique_lock lock(mu_);
    Segment& v = segments_[id];
    for (const ChunkKey& key : v.keys) {
      auto it = index_.find(key);
      if (it != index_.end() && it->second.segment == id && it->second.generation == generation) {
        IndexEraseLocked(key);
        metrics_.evictions.Increment();
      }
    }
    UpdateGaugesLocked();
    cv_.wait(lock, [&] { return v.readers == 0 && v.inflight == 0; });
  }
  Status st = WriteSegmentHeader(segments_[id], generation + 1);
  std::lock_guard lock(mu_);
  Segment& v = segments_[id];
  v.keys.clear();
  v.keys.shrink_to_fit();
  if (!st.ok()) {
    metrics_.write_errors.Increment();
    spdlog::warn("nvme: segment {} taken out of service: {}", id, st.ToString());
    v.state = SegmentState::kBroken;
    return true;  // others may still be reclaimable
  }
  v.generation = generation + 1;
  v.write_end = kBlockBytes;
  v.state = SegmentState::kFree;
  v.dirty = true;
  if (compact) metrics_.compactions.Increment();
  return true;
}

}  // namespace kvt::nvme
