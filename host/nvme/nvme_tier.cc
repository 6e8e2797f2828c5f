#include "host/nvme/nvme_tier.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>


namespace kvt::nvme {

using tiering::ChunkKey;
using tiering::Fingerprint;
using tiering::kRecordHeaderBytes;
using tiering::TransferPriority;

namespace {

constexpr uint32_t kSpareSegments = 1;  // kept free for compaction's copies
constexpr uint32_t kMaxParked = 3;      // reclaims a write may wait for before it is dropped

}  // namespace

StatusOr<Admission> ParseAdmission(std::string_view name) {
  if (name == "all") return Admission::kAll;
  if (name == "retrieved") return Admission::kRetrieved;
  return InvalidArgument("nvme admission must be 'all' or 'retrieved', not '" + std::string(name) + "'");
}

NvmeTier::NvmeTier(const NvmeTierOptions& options, prometheus::Registry& registry)
    : options_(options), registry_(registry), metrics_(registry) {}

StatusOr<std::unique_ptr<NvmeTier>> NvmeTier::Create(const NvmeTierOptions& options,
                                                     prometheus::Registry& registry) {
  if (options.segment_bytes < (1ull << 20) || options.segment_bytes % kBlockBytes != 0 ||
      options.segment_bytes > (1ull << 32)) {
    return InvalidArgument("nvme segment size must be a multiple of 4 KiB between 1 MiB and 4 GiB");
  }
  uint64_t segments = options.capacity_bytes / options.segment_bytes;
  if (segments < 3) {
    return InvalidArgument("nvme capacity " + std::to_string(options.capacity_bytes >> 20) +
                           " MiB must hold at least 3 segments of " + std::to_string(options.segment_bytes >> 20) +
                           " MiB");
  }
  if (options.compaction_threshold < 0 || options.compaction_threshold > 1) {
    return InvalidArgument("nvme compaction threshold must be between 0 and 1");
  }
  std::unique_ptr<NvmeTier> t(new NvmeTier(options, registry));
  // Slots held by write-back are host-tier space that evictions cannot free at once: at most a
  // quarter of the arena, so a store always finds room.
  t->hold_limit_ = options.writeback_bytes;
  if (options.host_arena.bytes) t->hold_limit_ = std::min(t->hold_limit_, options.host_arena.bytes / 4);
  IoQueueOptions qo;
  qo.backend = options.backend;
  qo.dir = options.dir;
  qo.depth = options.queue_depth;
  qo.allow_direct = options.allow_direct;
  KVT_ASSIGN_OR_RETURN(t->queue_, MakeIoQueue(qo));
  if (options.wrap_queue) t->queue_ = options.wrap_queue(std::move(t->queue_));
  t->direct_ = t->queue_->capabilities().direct;
  KVT_ASSIGN_OR_RETURN(t->staging_, StagingPool::Create(options.staging_bytes));
  t->zero_block_ = t->staging_->TryAllocate(kBlockBytes);
  if (!t->zero_block_) return InvalidArgument("nvme staging pool too small");
  std::memset(t->zero_block_->data(), 0, kBlockBytes);
  // The staging pool and the host arena as fixed buffers; the pool alone if the kernel refuses
  // the arena (too large to pin, say).
  std::vector<BufferRegion> regions{{t->staging_->base(), t->staging_->size()}};
  if (options.host_arena.base && options.host_arena.bytes) regions.push_back(options.host_arena);
  t->arena_registered_ = regions.size() > 1 && t->queue_->RegisterBuffers(regions);
  if (!t->arena_registered_) t->queue_->RegisterBuffers(std::span<const BufferRegion>(regions.data(), 1));
  t->metrics_.SetQueueInfo(registry, t->queue_->capabilities());
  // A record must fit in a segment (after its header) and, for reads, in the staging pool.
  t->max_payload_bytes_ = std::min(options.segment_bytes - kBlockBytes, t->staging_->size() - kBlockBytes) -
                          kRecordPayloadOffset;
  t->segments_.resize(segments);
  for (uint32_t i = 0; i < segments; ++i) t->segments_[i].id = i;
  t->scheduler_ = std::make_unique<tiering::TransferScheduler>(options.io_workers, &registry);
  KVT_RETURN_IF_ERROR(t->Recover());
  t->metrics_.capacity_bytes.Set(static_cast<double>(segments * options.segment_bytes));
  t->metrics_.enabled.Set(1);
  {
    std::lock_guard lock(t->mu_);
    t->UpdateGaugesLocked();
    t->MaybeScheduleReclaimLocked();
  }
  const auto& caps = t->queue_->capabilities();
  spdlog::info("nvme tier: {} | {} x {} MiB segments ({} MiB) | {} chunks recovered | queue {} depth {} ({}{})",
               options.dir, segments, options.segment_bytes >> 20, (segments * options.segment_bytes) >> 20,
               t->index_.size(), caps.backend, caps.depth, caps.note,
               t->arena_registered_        ? ", staging pool and host arena registered"
               : caps.registered_buffers ? ", staging pool registered"
                                         : "");
  if (!caps.direct || caps.backend != "io_uring") {
    spdlog::warn("nvme tier: running without {}: {}", caps.direct ? "io_uring" : "O_DIRECT", caps.note);
  }
  t->flusher_ = std::thread([p = t.get()] { p->FlusherLoop(); });
  return t;
}

NvmeTier::~NvmeTier() {
  {
    std::lock_guard lock(flusher_mu_);
    stopping_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  // Run the queued write-back and reclaim with scheduler_ still valid (running tasks use it),
  // then destroy it.
  scheduler_->Drain();
  scheduler_.reset();
  if (!disabled_) SyncDirty().IgnoreError();
}

std::string NvmeTier::SegmentPath(uint32_t id) const {
  char name[32];
  std::snprintf(name, sizeof name, "/seg-%06u.kvt", id);
  return options_.dir + name;
}

// ---- Index ------------------------------------------------------------------------------------

void NvmeTier::UpdateGaugesLocked() {
  metrics_.used_bytes.Set(static_cast<double>(live_bytes_));
  metrics_.chunk_count.Set(static_cast<double>(index_.size()));
}

void NvmeTier::IndexInsertLocked(const ChunkKey& key, const Location& loc) {
  auto [it, inserted] = index_.try_emplace(key, loc);
  if (!inserted) {
    Location& old = it->second;
    segments_[old.segment].live_bytes -= old.record_bytes;
    live_bytes_ -= old.record_bytes;
    old = loc;
  }
  segments_[loc.segment].live_bytes += loc.record_bytes;
  live_bytes_ += loc.record_bytes;
}

void NvmeTier::IndexEraseLocked(const ChunkKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  segments_[it->second.segment].live_bytes -= it->second.record_bytes;
  live_bytes_ -= it->second.record_bytes;
  index_.erase(it);
}

bool NvmeTier::Contains(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  bool present = pending_.count(key) > 0;
  if (!present) {
    auto it = index_.find(key);
    present = it != index_.end();
    // A lookup is usually followed by a retrieve: start reading the record now.
    if (present && options_.prefetch_on_lookup && !disabled_ && !prefetches_.count(key)) {
      StartPrefetchLocked(key, it->second);
    }
  }
  (present ? metrics_.hits : metrics_.misses).Increment();
  return present;
}

bool NvmeTier::Remove(const ChunkKey& key) {
  PendingPtr erase;
  {
    std::lock_guard lock(mu_);
    // A queued write of it will not be written; one in flight is erased when it completes.
    const bool was_pending = pending_.erase(key) > 0;
    prefetches_.erase(key);
    auto it = index_.find(key);
    if (it == index_.end()) return was_pending;
    const Location loc = it->second;
    IndexEraseLocked(key);
    UpdateGaugesLocked();
    if (disabled_) return true;
    erase = MakeEraseLocked(key, loc, next_ticket_++);
    inflight_tickets_.insert(erase->ticket);
    write_queue_.push_back(erase);
  }
  scheduler_->Submit(TransferPriority::kWriteBack, [this] { WriteBatch(); });
  return true;
}

NvmeTier::PendingPtr NvmeTier::MakeEraseLocked(const ChunkKey& key, const Location& loc, uint64_t ticket) {
  auto w = std::make_shared<PendingWrite>();
  w->kind = WriteKind::kErase;
  w->key = key;
  w->erase_at = loc;
  w->ticket = ticket;
  ++segments_[loc.segment].inflight;  // the segment is not reclaimed under the erase
  return w;
}

// ---- Write-back -------------------------------------------------------------------------------

NvmeTier::PendingPtr NvmeTier::MakeDemotion(const tiering::ChunkIndex::EntryPtr& entry, bool from_slot) {
  auto w = std::make_shared<PendingWrite>();
  w->kind = WriteKind::kDemotion;
  w->key = entry->key;
  w->fingerprint = entry->fingerprint;
  w->payload_bytes = entry->bytes;
  const auto* slot = entry->slot.get();
  // The host tier's slots are 4 KiB-aligned and rounded up to 4 KiB: O_DIRECT can use them.
  from_slot = from_slot && reinterpret_cast<uintptr_t>(slot->data()) % kIoAlignment == 0 &&
              slot->bytes() >= RoundUpBlock(entry->bytes);
  if (from_slot) {
    w->buf = staging_->TryAllocate(kBlockBytes);
    if (!w->buf) return nullptr;
    w->source = entry;
    w->held_bytes = RoundUpBlock(entry->bytes);
  } else {
    const uint64_t record = RecordBytes(entry->bytes);
    w->buf = staging_->TryAllocate(record);
    if (!w->buf) return nullptr;
    std::memcpy(w->buf->data() + kRecordPayloadOffset, slot->data(), entry->bytes);
    std::memset(w->buf->data() + kRecordPayloadOffset + entry->bytes, 0,
                record - kRecordPayloadOffset - entry->bytes);
  }
  return w;
}

NvmeTier::EnqueueResult NvmeTier::EnqueueDemotion(const tiering::ChunkIndex::EntryPtr& entry,
                                                  const std::shared_ptr<PersistBatch>& batch) {
  // From the slot while the slots held stay within the budget; past it, from a staging copy.
  bool staging_full = false;
  for (bool from_slot : {true, false}) {
    PendingPtr w = MakeDemotion(entry, from_slot);
    if (!w) {
      staging_full = true;
      continue;
    }
    w->batch = batch;
    EnqueueResult r = Enqueue(std::move(w));
    if (r != EnqueueResult::kNoRoom) return r;
  }
  return staging_full ? EnqueueResult::kNoStaging : EnqueueResult::kNoRoom;
}

void NvmeTier::Demote(const tiering::ChunkIndex::EntryPtr& entry) {
  if (disabled_.load(std::memory_order_acquire)) return;
  if (entry->bytes > max_payload_bytes_) {
    metrics_.dropped_too_large.Increment();
    return;
  }
  if (options_.admission == Admission::kRetrieved && entry->retrievals.load(std::memory_order_relaxed) == 0) {
    metrics_.dropped_admission.Increment();
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (index_.count(entry->key) || pending_.count(entry->key)) return;  // already there (promoted earlier)
  }
  EnqueueResult r = EnqueueDemotion(entry, nullptr);
  if (r == EnqueueResult::kNoRoom || r == EnqueueResult::kNoStaging) metrics_.dropped_staging_full.Increment();
}

NvmeTier::EnqueueResult NvmeTier::Enqueue(PendingPtr w) {
  {
    std::lock_guard lock(mu_);
    if (index_.count(w->key) || pending_.count(w->key)) return EnqueueResult::kAlreadyThere;
    if (w->held_bytes && held_bytes_ + w->held_bytes > hold_limit_) return EnqueueResult::kNoRoom;
    held_bytes_ += w->held_bytes;
    if (w->source) {
      // The padding after the payload goes to disk too: zeros, not what the slot held before.
      // Under mu_, with the key now pending, so only this write touches those bytes.
      char* slot = w->source->slot->data();
      std::memset(slot + w->payload_bytes, 0, RoundUpBlock(w->payload_bytes) - w->payload_bytes);
    }
    w->ticket = next_ticket_++;
    inflight_tickets_.insert(w->ticket);
    pending_[w->key] = w;
    write_queue_.push_back(std::move(w));
  }
  scheduler_->Submit(TransferPriority::kWriteBack, [this] { WriteBatch(); });
  return EnqueueResult::kQueued;
}

Status NvmeTier::WaitForWriteBackRoom(uint64_t bytes, Deadline deadline) {
  std::unique_lock lock(mu_);
  bool ok = cv_.wait_until(lock, deadline.at(), [&] {
    return disabled_ || held_bytes_ == 0 || held_bytes_ + RoundUpBlock(bytes) <= hold_limit_;
  });
  return ok ? Status::Ok() : Timeout("NVMe write-back did not make room before the deadline");
}

void NvmeTier::WriteBatch() {
  std::vector<PendingPtr> batch;
  {
    std::lock_guard lock(mu_);
    while (!write_queue_.empty() && batch.size() < kWriteBatch) {
      batch.push_back(std::move(write_queue_.front()));
      write_queue_.pop_front();
    }
  }
  if (!batch.empty()) WriteRecords(batch);
}

bool NvmeTier::ReserveLocked(uint64_t bytes, bool for_compaction, Location* out) {
  if (disabled_.load(std::memory_order_relaxed)) return false;
  const uint64_t seg_bytes = options_.segment_bytes;
  for (;;) {
    if (active_ >= 0) {
      Segment& a = segments_[active_];
      if (a.write_end + bytes <= seg_bytes) {
        out->segment = a.id;
        out->generation = a.generation;
        out->offset = a.write_end;
        out->record_bytes = bytes;
        a.write_end += bytes;
        ++a.inflight;
        return true;
      }
      a.state = SegmentState::kSealed;
      a.sealed_order = ++seal_counter_;
      active_ = -1;
    }
    // Rotate: a free segment (or a file not created yet), keeping spares for compaction.
    if (!for_compaction && SpareSegmentsLocked() <= kSpareSegments) {
      MaybeScheduleReclaimLocked();
      return false;
    }
    Segment* next = nullptr;
    for (auto& s : segments_) {
      if (s.state == SegmentState::kFree) {
        next = &s;
        break;
      }
    }
    if (!next) {
      for (auto& s : segments_) {
        if (s.state != SegmentState::kAbsent) continue;
        // Creating the file is one open, one fallocate and a 4 KiB write: cheap enough under the lock.
        Status st = OpenSegmentFile(s, /*create=*/true);
        if (st.ok()) st = WriteSegmentHeader(s, 1);
        if (!st.ok()) {
          metrics_.write_errors.Increment();
          spdlog::warn("nvme: cannot create segment {}: {}", s.id, st.ToString());
          s.fd.Reset();
          return false;
        }
        s.state = SegmentState::kFree;
        s.generation = 1;
        s.write_end = kBlockBytes;
        s.dirty = true;
        next = &s;
        break;
      }
    }
    if (!next) {
      MaybeScheduleReclaimLocked();
      return false;
    }
    next->state = SegmentState::kActive;
    active_ = static_cast<int>(next->id);
    MaybeScheduleReclaimLocked();
  }
}

uint64_t NvmeTier::WriteRecords(std::vector<PendingPtr>& writes) {
  std::vector<IoRequest> requests;
  std::vector<size_t> first_request;  // of placed[i]; its requests run to first_request[i + 1]
  std::vector<Location> places;
  std::vector<PendingPtr> placed;
  uint64_t failures = 0;
  auto fail = [&](const PendingPtr& w) {
    ++failures;
    if (w->batch) w->batch->failures.fetch_add(1);
  };
  for (auto& w : writes) {
    if (w->kind == WriteKind::kErase) {
      const Location& loc = w->erase_at;
      IoRequest r;
      r.op = IoRequest::Op::kWrite;
      r.fd = segments_[loc.segment].fd.get();  // fixed: the erase holds a write reference
      r.buf = zero_block_->data();
      r.len = static_cast<uint32_t>(kBlockBytes);
      r.offset = loc.offset;
      first_request.push_back(requests.size());
      requests.push_back(r);
      places.push_back(loc);
      placed.push_back(w);
      continue;
    }
    // The checksum before the lock: it is the expensive part of a header.
    tiering::RecordMeta meta;
    meta.key = w->key;
    meta.fingerprint = w->fingerprint;
    meta.payload_bytes = w->payload_bytes;
    meta.payload_xxh3 = tiering::RecordPayloadChecksum(w->payload(), w->payload_bytes);
    const bool compaction = w->kind == WriteKind::kCompaction;
    Location loc;
    {
      std::lock_guard lock(mu_);
      bool wanted = compaction || (pending_.count(w->key) && pending_[w->key] == w);
      if (wanted && !ReserveLocked(RecordBytes(w->payload_bytes), compaction, &loc) && !compaction &&
          reclaim_scheduled_ && w->parked < kMaxParked) {
        // No free segment, but a reclaim is under way: the write waits for it (in the tier, not
        // in a client's store) instead of being dropped; Reclaim() queues it again.
        ++w->parked;
        parked_.push_back(w);
        continue;
      }
      if (!wanted || loc.record_bytes == 0) {
        if (wanted) {
          if (!compaction) metrics_.dropped_no_space.Increment();
          fail(w);
        }
        if (!compaction && pending_.count(w->key) && pending_[w->key] == w) pending_.erase(w->key);
        held_bytes_ -= w->held_bytes;
        w->held_bytes = 0;
        inflight_tickets_.erase(w->ticket);
        cv_.notify_all();
        continue;
      }
      loc.payload_bytes = w->payload_bytes;
      loc.fingerprint = w->fingerprint;
      // A compacted copy keeps its sequence: a removal (or a newer store) of the key orders
      // against the record, wherever compaction moved it.
      loc.sequence = meta.sequence = compaction ? w->sequence : next_sequence_++;
    }
    meta.generation = loc.generation;
    tiering::EncodeRecordHeader(meta, w->buf->data());
    const int fd = segments_[loc.segment].fd.get();  // fixed while the segment has writes in flight
    first_request.push_back(requests.size());
    if (w->source) {
      std::memset(w->buf->data() + kRecordHeaderBytes, 0, kBlockBytes - kRecordHeaderBytes);
      requests.push_back({IoRequest::Op::kWrite, fd, w->buf->data(), static_cast<uint32_t>(kBlockBytes), loc.offset, 0});
      requests.push_back({IoRequest::Op::kWrite, fd, w->source->slot->data(),
                          static_cast<uint32_t>(RoundUpBlock(w->payload_bytes)), loc.offset + kRecordPayloadOffset, 0});
    } else {
      std::memset(w->buf->data() + kRecordHeaderBytes, 0, kRecordPayloadOffset - kRecordHeaderBytes);
      requests.push_back({IoRequest::Op::kWrite, fd, w->buf->data(), static_cast<uint32_t>(loc.record_bytes), loc.offset, 0});
    }
    places.push_back(loc);
    placed.push_back(w);
  }
  first_request.push_back(requests.size());
  if (!requests.empty()) queue_->Run(requests);
  std::vector<PendingPtr> erasures;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < placed.size(); ++i) {
      PendingWrite& w = *placed[i];
      const Location& loc = places[i];
      Segment& seg = segments_[loc.segment];
      --seg.inflight;
      Status st;
      for (size_t k = first_request[i]; k < first_request[i + 1] && st.ok(); ++k) st = IoResultStatus(requests[k]);
      bool written_not_indexed = false;
      if (!st.ok()) {
        metrics_.write_errors.Increment();
        fail(placed[i]);
        if (w.kind == WriteKind::kErase) {
          spdlog::warn("nvme: erasing removed chunk {} in segment {} failed ({}); it may come back after a restart",
                       w.key.ToHex(), loc.segment, st.ToString());
        } else {
          spdlog::warn("nvme: write of chunk {} to segment {} failed: {}", w.key.ToHex(), loc.segment, st.ToString());
        }
      } else if (!disabled_) {
        seg.dirty = true;
        if (w.kind == WriteKind::kCompaction) {
          seg.keys.push_back(w.key);
          auto it = index_.find(w.key);
          if (it != index_.end() && it->second.sequence == w.sequence) {
            IndexInsertLocked(w.key, loc);
            metrics_.CountCompaction(w.payload_bytes);
          } else {
            written_not_indexed = true;  // removed or replaced while it was copied
          }
        } else if (w.kind == WriteKind::kDemotion) {
          seg.keys.push_back(w.key);
          auto pit = pending_.find(w.key);
          if (pit != pending_.end() && pit->second.get() == &w) {
            IndexInsertLocked(w.key, loc);
            metrics_.stored_chunks.Increment();
            metrics_.written_bytes.Increment(static_cast<double>(w.payload_bytes));
            metrics_.CountDemotion(w.payload_bytes);
          } else {
            written_not_indexed = true;  // removed while it was written
          }
        }
      }
      if (w.kind == WriteKind::kDemotion) {
        auto pit = pending_.find(w.key);
        if (pit != pending_.end() && pit->second.get() == &w) pending_.erase(pit);
      }
      held_bytes_ -= w.held_bytes;
      w.held_bytes = 0;
      if (written_not_indexed) {
        // Erase what was written, under the write's own ticket (when it has one): a Flush that
        // waited for the write waits for the erase too.
        const uint64_t ticket = w.ticket ? w.ticket : next_ticket_++;
        erasures.push_back(MakeEraseLocked(w.key, loc, ticket));
        inflight_tickets_.insert(ticket);
      } else {
        inflight_tickets_.erase(w.ticket);
      }
    }
    for (auto& e : erasures) write_queue_.push_back(e);
    UpdateGaugesLocked();
  }
  cv_.notify_all();
  for (size_t i = 0; i < erasures.size(); ++i) {
    scheduler_->Submit(TransferPriority::kWriteBack, [this] { WriteBatch(); });
  }
  return failures;
}

// ---- Durability -------------------------------------------------------------------------------

Status NvmeTier::WaitForWrites(uint64_t ticket, Deadline deadline) {
  std::unique_lock lock(mu_);
  bool ok = cv_.wait_until(lock, deadline.at(), [&] {
    return inflight_tickets_.empty() || *inflight_tickets_.begin() > ticket;
  });
  return ok ? Status::Ok() : Timeout("NVMe write-back did not drain before the deadline");
}

Status NvmeTier::SyncDirty() {
  std::vector<std::pair<uint32_t, int>> dirty;
  {
    std::lock_guard lock(mu_);
    for (auto& s : segments_) {
      if (s.dirty && s.fd.valid()) {
        s.dirty = false;
        dirty.emplace_back(s.id, s.fd.get());
      }
    }
  }
  Status first;
  for (auto [id, fd] : dirty) {
    Status st = queue_->Sync(fd);
    if (!st.ok()) {
      metrics_.sync_errors.Increment();
      std::lock_guard lock(mu_);
      segments_[id].dirty = true;
      if (first.ok()) first = st.WithContext("segment " + std::to_string(id));
    }
  }
  metrics_.flushes.Increment();
  return first;
}

Status NvmeTier::Flush(Deadline deadline) {
  if (!CheckDirectory()) return IoError("NVMe tier disabled: " + disabled_reason_);
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    ticket = next_ticket_ - 1;
  }
  KVT_RETURN_IF_ERROR(WaitForWrites(ticket, deadline));
  return SyncDirty();
}

Status NvmeTier::Persist(const tiering::ChunkIndex* host, Deadline deadline) {
  if (!CheckDirectory()) return IoError("NVMe tier disabled: " + disabled_reason_);
  auto batch = std::make_shared<PersistBatch>();
  uint64_t skipped = 0;
  if (host) {
    std::vector<ChunkKey> keys;
    host->ForEach([&](const tiering::ChunkEntry& e) { keys.push_back(e.key); });
    for (const ChunkKey& key : keys) {
      {
        std::lock_guard lock(mu_);
        if (index_.count(key) || pending_.count(key)) continue;
      }
      tiering::ChunkIndex::EntryPtr e = host->Find(key);
      if (!e) continue;  // evicted meanwhile: its demotion is already queued or was dropped
      if (e->bytes > max_payload_bytes_) {
        ++skipped;
        continue;
      }
      // Written like a demotion; waits for room rather than skip it.
      for (;;) {
        EnqueueResult r = EnqueueDemotion(e, batch);
        if (r == EnqueueResult::kQueued || r == EnqueueResult::kAlreadyThere) break;
        std::unique_lock lock(mu_);
        if (inflight_tickets_.empty()) {
          return ResourceExhausted("persist: the staging pool cannot hold a chunk of " + std::to_string(e->bytes) +
                                   " bytes");
        }
        // Completions notify cv_; the timeout covers one that came before this wait began.
        cv_.wait_for(lock, std::chrono::milliseconds(2));
        if (deadline.expired()) return Timeout("persist: write-back room did not free up before the deadline");
      }
    }
  }
  KVT_RETURN_IF_ERROR(Flush(deadline));
  uint64_t failed = batch->failures.load() + skipped;
  if (failed) {
    return IoError("persist: " + std::to_string(failed) + " chunks could not be written to NVMe");
  }
  return Status::Ok();
}

bool NvmeTier::CheckDirectory() {
  if (disabled_) return false;
  struct stat st;
  std::string why;
  if (::stat(options_.dir.c_str(), &st) != 0) {
    why = "data directory " + options_.dir + " is gone";
  } else {
    std::lock_guard lock(mu_);
    for (auto& s : segments_) {
      struct stat fs;
      if (s.fd.valid() && ::fstat(s.fd.get(), &fs) == 0 && fs.st_nlink == 0) {
        why = "segment file " + SegmentPath(s.id) + " was deleted";
        break;
      }
    }
  }
  if (why.empty()) return true;
  Disable(why);
  return false;
}

void NvmeTier::Disable(const std::string& why) {
  std::lock_guard lock(mu_);
  if (disabled_) return;
  disabled_reason_ = why;
  disabled_.store(true, std::memory_order_release);
  index_.clear();
  pending_.clear();
  prefetches_.clear();
  prefetch_order_.clear();
  live_bytes_ = 0;
  for (auto& s : segments_) s.live_bytes = 0;
  metrics_.read_errors.Increment();
  metrics_.enabled.Set(0);
  UpdateGaugesLocked();
  spdlog::error("nvme tier disabled: {}; NVMe lookups miss from now on, the host tier keeps serving "
                "(restart the daemon to bring the tier back)", why);
}

void NvmeTier::FlusherLoop() {
  std::unique_lock lock(flusher_mu_);
  const auto period = std::chrono::milliseconds(options_.flush_interval_ms ? options_.flush_interval_ms : 1000);
  while (!flusher_cv_.wait_for(lock, period, [&] { return stopping_; })) {
    lock.unlock();
    if (options_.flush_interval_ms) {
      Status st = Flush(Deadline::After(std::chrono::seconds(30)));
      if (!st.ok() && !disabled_) spdlog::warn("nvme: periodic flush: {}", st.ToString());
    } else {
      CheckDirectory();
    }
    lock.lock();
  }
}

NvmeCounters NvmeTier::counters() const {
  std::lock_guard lock(mu_);
  NvmeCounters c;
  c.enabled = !disabled_;
  c.capacity_bytes = segments_.size() * options_.segment_bytes;
  c.used_bytes = live_bytes_;
  c.chunks = index_.size();
  c.segments = segments_.size();
  c.writeback_bytes = held_bytes_;
  for (const auto& s : segments_) {
    if (s.state != SegmentState::kAbsent) c.disk_bytes += options_.segment_bytes;
    if (s.state == SegmentState::kFree || s.state == SegmentState::kAbsent) ++c.free_segments;
  }
  return c;
}

}  // namespace kvt::nvme
