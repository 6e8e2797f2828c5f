// NvmeTier — the NVMe tier: chunks in preallocated, append-only segment files under a data
// directory, with a hard capacity (number of segments x segment size), an in-memory index
// rebuilt from the segments at start-up, and verification of every read.
//
// Data flow
//  - Demote() is the host tier's eviction sink: it applies the admission rule, copies the chunk
//    into the staging pool and queues a write-back; it never waits on the disk (when the staging
//    pool is full the demotion is dropped and counted). Until its write completes, a queued chunk
//    is served from its staging copy.
//  - Read() (a host miss) reads the record at demand priority, verifies header and payload
//    checksum and copies the payload out. A mismatch is a miss, counted, logged with the key, and
//    the record leaves the index.
//  - Persist() writes every host-resident chunk the tier lacks, waits for all write-back queued
//    before it, and fdatasyncs the segments written since the last sync: everything stored before
//    the call is then durable. A flusher thread does the same minus the host chunks every
//    flush_interval_ms.
//  - When free segments run low a background task reclaims one: compaction (live records copied
//    forward, the copies synced, then the segment's generation bumped) when at most
//    compaction_threshold of it is live, else eviction of its records.
//  - A fault (I/O error, short read, full disk) is a miss or a dropped demotion, counted; a data
//    directory that disappears disables the tier (every lookup misses) while the host tier
//    serves on.
//
// Thread-safe; Demote may be called with BlockStore locks held (it takes only this tier's lock).
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/deadline.h"
#include "common/status_or.h"
#include "common/unique_fd.h"
#include "host/nvme/io_queue.h"
#include "host/nvme/nvme_metrics.h"
#include "host/nvme/staging_pool.h"
#include "tiering/chunk_index.h"
#include "tiering/lower_tier.h"
#include "tiering/transfer_scheduler.h"

namespace kvt::nvme {

enum class Admission { kAll, kRetrieved };
StatusOr<Admission> ParseAdmission(std::string_view name);  // all | retrieved

struct NvmeTierOptions {
  std::string dir;
  uint64_t capacity_bytes = 4ull << 30;
  uint64_t segment_bytes = 64ull << 20;
  Admission admission = Admission::kAll;
  bool promote_on_hit = true;
  uint32_t flush_interval_ms = 1000;  // 0: flush only on Persist
  uint32_t queue_depth = 32;
  IoBackend backend = IoBackend::kAuto;
  bool allow_direct = true;           // false: buffered I/O even where O_DIRECT works
  uint64_t staging_bytes = 64ull << 20;
  uint32_t io_workers = 4;            // transfer scheduler threads (one kept for demand reads)
  double compaction_threshold = 0.5;  // compact a segment at most this fraction live; else evict it
  int64_t read_timeout_ms = 10000;
  // Tests: wraps the probed queue (in a FaultInjectingIoQueue).
  std::function<std::unique_ptr<IoQueue>(std::unique_ptr<IoQueue>)> wrap_queue;
};

struct NvmeCounters {
  bool enabled = false;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;   // record bytes of live chunks
  uint64_t chunks = 0;
  uint64_t disk_bytes = 0;   // bytes of segment files created
  uint64_t segments = 0;
  uint64_t free_segments = 0;
};

class NvmeTier final : public tiering::LowerTier {
 public:
  static StatusOr<std::unique_ptr<NvmeTier>> Create(const NvmeTierOptions& options,
                                                    prometheus::Registry& registry);
  ~NvmeTier() override;

  bool Contains(const tiering::ChunkKey& key) override;
  Status Read(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint, void* out, uint64_t bytes,
              tiering::TransferPriority priority) override;
  void Remove(const tiering::ChunkKey& key) override;
  bool promote_on_hit() const override { return options_.promote_on_hit; }

  // The eviction sink. Never blocks on I/O.
  void Demote(const tiering::ChunkEntry& entry);
  // Makes everything in `host` (and all write-back queued so far) durable, by `deadline`.
  Status Persist(const tiering::ChunkIndex* host, Deadline deadline);
  // Waits for the write-back queued so far and fdatasyncs what it wrote.
  Status Flush(Deadline deadline);

  NvmeCounters counters() const;
  const IoQueueCapabilities& queue_capabilities() const { return queue_->capabilities(); }
  bool enabled() const { return !disabled_.load(std::memory_order_acquire); }
  const NvmeTierOptions& options() const { return options_; }

 private:
  struct Location {
    uint32_t segment = 0;
    uint64_t generation = 0;
    uint64_t offset = 0;
    uint64_t record_bytes = 0;
    uint64_t payload_bytes = 0;
    tiering::Fingerprint fingerprint;
    uint64_t sequence = 0;
  };
  enum class SegmentState { kAbsent, kFree, kActive, kSealed, kReclaiming, kBroken };
  struct Segment {
    uint32_t id = 0;
    UniqueFd fd;
    SegmentState state = SegmentState::kAbsent;
    uint64_t generation = 0;
    uint64_t write_end = 0;  // next append offset
    uint64_t live_bytes = 0;
    uint32_t inflight = 0;   // writes reserved, not completed
    uint32_t readers = 0;
    bool dirty = false;
    uint64_t sealed_order = 0;
    std::vector<tiering::ChunkKey> keys;  // written in this generation (live or not)
  };
  struct PersistBatch {
    std::atomic<uint64_t> failures{0};
  };
  struct PendingWrite {
    tiering::ChunkKey key;
    tiering::Fingerprint fingerprint;
    uint64_t payload_bytes = 0;
    std::unique_ptr<IoBuffer> buf;  // [header][payload][padding]: RecordBytes(payload_bytes)
    uint64_t ticket = 0;
    std::shared_ptr<PersistBatch> batch;
    bool compaction = false;
    uint64_t replaces_sequence = 0;  // compaction: the copy counts only if the key still has this
  };
  using PendingPtr = std::shared_ptr<PendingWrite>;

  NvmeTier(const NvmeTierOptions& options, prometheus::Registry& registry);

  std::string SegmentPath(uint32_t id) const;
  Status Recover();
  Status OpenSegmentFile(Segment& s, bool create);
  Status WriteSegmentHeader(Segment& s, uint64_t generation);
  void ScanSegment(Segment& s, std::unordered_map<tiering::ChunkKey, Location, tiering::ChunkKeyHash>* found);

  // Queues a record for write-back (requires !mu_).
  void Enqueue(PendingPtr w);
  void WriteBatch();
  // Writes records synchronously; returns how many failed.
  uint64_t WriteRecords(std::vector<PendingPtr>& writes);
  // A place for a record of `bytes` in the active segment (rotating as needed); false when full.
  bool ReserveLocked(uint64_t bytes, bool for_compaction, Location* out);
  void IndexInsertLocked(const tiering::ChunkKey& key, const Location& loc);
  void IndexEraseLocked(const tiering::ChunkKey& key);
  uint32_t SpareSegmentsLocked() const;
  void MaybeScheduleReclaimLocked();
  void Reclaim();
  bool ReclaimOne();
  // Reads and verifies one record; the payload is at buf->data() + kRecordHeaderBytes.
  StatusOr<std::unique_ptr<IoBuffer>> ReadRecord(const tiering::ChunkKey& key, const Location& loc,
                                                tiering::TransferPriority priority, Deadline deadline);
  Status SyncDirty();
  Status WaitForWrites(uint64_t ticket, Deadline deadline);
  bool CheckDirectory();
  void Disable(const std::string& why);
  void FlusherLoop();
  void UpdateGaugesLocked();

  const NvmeTierOptions options_;
  prometheus::Registry& registry_;
  NvmeMetrics metrics_;
  std::unique_ptr<IoQueue> queue_;
  std::unique_ptr<StagingPool> staging_;
  std::unique_ptr<tiering::TransferScheduler> scheduler_;
  uint64_t max_payload_bytes_ = 0;
  bool direct_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // write completions, reclaim progress
  std::vector<Segment> segments_;
  int active_ = -1;
  std::unordered_map<tiering::ChunkKey, Location, tiering::ChunkKeyHash> index_;
  std::unordered_map<tiering::ChunkKey, PendingPtr, tiering::ChunkKeyHash> pending_;
  std::deque<PendingPtr> write_queue_;
  std::set<uint64_t> inflight_tickets_;
  uint64_t next_ticket_ = 1;
  uint64_t next_sequence_ = 1;
  uint64_t seal_counter_ = 0;
  uint64_t live_bytes_ = 0;
  bool reclaim_scheduled_ = false;
  std::string disabled_reason_;
  std::atomic<bool> disabled_{false};

  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool stopping_ = false;
  std::thread flusher_;
};

}  // namespace kvt::nvme
