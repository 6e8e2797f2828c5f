// NvmeTier reads: demand reads, prefetch on lookup, verification of every record read.
#include <spdlog/spdlog.h>

#include <cstring>

#include "host/nvme/nvme_tier.h"
#include "host/nvme/segment_format.h"

namespace kvt::nvme {

using tiering::ChunkKey;
using tiering::Fingerprint;
using tiering::TransferPriority;

NvmeTier::ReadOpPtr NvmeTier::StartRead(const Location& loc, TransferPriority priority, bool pooled_only) {
  auto op = std::make_shared<ReadOp>();
  op->loc = loc;
  op->buf = staging_->TryAllocate(loc.record_bytes);
  if (!op->buf && !pooled_only) op->buf = StagingPool::AllocateUnpooled(loc.record_bytes);
  if (!op->buf) return nullptr;
  op->request.op = IoRequest::Op::kRead;
  op->request.fd = segments_[loc.segment].fd.get();  // fixed: the caller holds a reader reference
  op->request.buf = op->buf->data();
  op->request.len = static_cast<uint32_t>(loc.record_bytes);
  op->request.offset = loc.offset;
  const uint32_t segment = loc.segment;
  auto task = [this, op, segment] {
    queue_->Run(std::span<IoRequest>(&op->request, 1));
    {
      std::lock_guard lock(mu_);
      --segments_[segment].readers;
    }
    cv_.notify_all();
    std::lock_guard lock(op->mu);
    op->done = true;
    op->cv.notify_all();
  };
  // Background reads come from a scheduler task already (compaction): run them inline rather
  // than wait for a second non-demand worker.
  if (priority == TransferPriority::kBackground) task();
  else scheduler_->Submit(priority, std::move(task));
  return op;
}

StatusOr<std::unique_ptr<IoBuffer>> NvmeTier::FinishRead(const ChunkKey& key, const ReadOpPtr& op, Deadline deadline) {
  const Location& loc = op->loc;
  {
    std::unique_lock lock(op->mu);
    if (!op->cv.wait_until(lock, deadline.at(), [&] { return op->done; })) {
      return Timeout("NVMe read of chunk " + key.ToHex() + " did not complete in time");
    }
  }
  Status st = IoResultStatus(op->request);
  if (!st.ok()) {
    metrics_.read_errors.Increment();
    return st.WithContext("segment " + std::to_string(loc.segment));
  }
  auto meta = ParseSegmentRecord(op->buf->data(), loc.generation, loc.record_bytes);
  if (!meta || !(meta->key == key) || !(meta->fingerprint == loc.fingerprint) ||
      meta->payload_bytes != loc.payload_bytes) {
    return Corruption("record header of chunk " + key.ToHex() + " in segment " + std::to_string(loc.segment) +
                      " at offset " + std::to_string(loc.offset) + " does not verify");
  }
  if (tiering::RecordPayloadChecksum(op->buf->data() + kRecordPayloadOffset, meta->payload_bytes) !=
      meta->payload_xxh3) {
    return Corruption("payload checksum of chunk " + key.ToHex() + " in segment " + std::to_string(loc.segment) +
                      " at offset " + std::to_string(loc.offset) + " does not match");
  }
  return std::move(op->buf);
}

StatusOr<std::unique_ptr<IoBuffer>> NvmeTier::ReadRecord(const ChunkKey& key, const Location& loc,
                                                        TransferPriority priority, Deadline deadline) {
  // The caller holds a reader reference on loc.segment; the read gives it back.
  ReadOpPtr op = StartRead(loc, priority, /*pooled_only=*/false);
  if (!op) {
    std::lock_guard lock(mu_);
    --segments_[loc.segment].readers;
    cv_.notify_all();
    return ResourceExhausted("no memory for a read buffer");
  }
  return FinishRead(key, op, deadline);
}

void NvmeTier::StartPrefetchLocked(const ChunkKey& key, const Location& loc) {
  // The oldest prefetches nobody read yet give way (their buffers go back when their reads end).
  while (prefetch_order_.size() >= kMaxPrefetches) {
    auto it = prefetches_.find(prefetch_order_.front());
    if (it != prefetches_.end()) prefetches_.erase(it);
    prefetch_order_.pop_front();
  }
  ++segments_[loc.segment].readers;
  ReadOpPtr op = StartRead(loc, TransferPriority::kPrefetch, /*pooled_only=*/true);
  if (!op) {
    --segments_[loc.segment].readers;  // the staging pool is busy: no prefetch
    return;
  }
  prefetches_[key] = std::move(op);
  prefetch_order_.push_back(key);
  metrics_.prefetches.Increment();
}

Status NvmeTier::Read(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t bytes,
                      TransferPriority priority) {
  PendingPtr staged;
  ReadOpPtr prefetched;
  Location loc;
  {
    std::lock_guard lock(mu_);
    if (disabled_) {
      metrics_.misses.Increment();
      return NotFound("NVMe tier disabled: " + disabled_reason_);
    }
    if (auto p = pending_.find(key); p != pending_.end()) {
      staged = p->second;
    } else if (auto it = index_.find(key); it != index_.end()) {
      loc = it->second;
    } else {
      metrics_.misses.Increment();
      return NotFound("chunk " + key.ToHex() + " not on NVMe");
    }
    const Fingerprint& fp = staged ? staged->fingerprint : loc.fingerprint;
    uint64_t len = staged ? staged->payload_bytes : loc.payload_bytes;
    if (!(fp == fingerprint) || len != bytes) {
      metrics_.misses.Increment();
      return InvalidArgument("chunk " + key.ToHex() + " on NVMe has another namespace or length");
    }
    if (auto p = prefetches_.find(key); !staged && p != prefetches_.end()) {
      // Taken by this read whether or not it still matches (a newer copy of the key: it does not).
      if (p->second->loc.sequence == loc.sequence) prefetched = p->second;
      prefetches_.erase(p);
    }
    if (!staged && !prefetched) ++segments_[loc.segment].readers;
  }
  if (staged) {
    // Still queued for write-back: its slot (or staging copy) is the chunk; the write never
    // changes the payload bytes.
    std::memcpy(out, staged->payload(), bytes);
    metrics_.hits.Increment();
    if (options_.promote_on_hit) metrics_.CountPromotion(priority, bytes);
    return Status::Ok();
  }
  const Deadline deadline = Deadline::After(std::chrono::milliseconds(options_.read_timeout_ms));
  auto buf = prefetched ? FinishRead(key, prefetched, deadline) : ReadRecord(key, loc, priority, deadline);
  if (!buf.ok()) {
    metrics_.misses.Increment();
    if (buf.status().code() == StatusCode::kCorruption) {
      metrics_.checksum_failures.Increment();
      spdlog::warn("nvme: {}; dropping the record (a miss: the engine recomputes)", buf.status().message());
      std::lock_guard lock(mu_);
      auto it = index_.find(key);
      if (it != index_.end() && it->second.sequence == loc.sequence) IndexEraseLocked(key);
      UpdateGaugesLocked();
    } else {
      spdlog::warn("nvme: read of chunk {} failed: {}", key.ToHex(), buf.status().ToString());
    }
    return buf.status();
  }
  std::memcpy(out, (*buf)->data() + kRecordPayloadOffset, bytes);
  metrics_.hits.Increment();
  metrics_.read_bytes.Increment(static_cast<double>(bytes));
  if (options_.promote_on_hit) metrics_.CountPromotion(priority, bytes);
  return Status::Ok();
}

}  // namespace kvt::nvme
