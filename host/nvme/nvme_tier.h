// NvmeTier — the NVMe tier: chunks in preallocated, append-only segment files under a data
// directory, with a hard capacity (number of segments x segment size), an in-memory index
// rebuilt from the segments at start-up, and verification of every read.
//
// Data flow
//  - Demote() is the host tier's eviction sink: it applies the admission rule and queues a
//    write-back that keeps the evicted entry (and so its host-arena slot) alive until the record
//    is on disk: the payload goes to the segment file straight from the slot (O_DIRECT, and
//    WRITE_FIXED where the arena is registered with io_uring), with only the 4 KiB header block
//    from the staging pool. It never waits on the disk: when the slots held by queued write-back
//    would exceed writeback_bytes the chunk is copied into the staging pool instead, and when
//    that is full too the demotion is dropped and counted. Until its write completes, a queued
//    chunk is served from its slot (or copy).
//  - Read() (a host miss) reads the record at demand priority into the staging pool (registered:
//    READ_FIXED), verifies header and payload checksum and copies the payload out. A mismatch is
//    a miss, counted, logged with the key, and the record leaves the index.
//  - Contains() (a lookup) of a chunk on NVMe starts reading it at prefetch priority into the
//    staging pool (at most kMaxPrefetches at once, oldest dropped first); the Read that follows
//    takes the buffer instead of starting its own read.
//  - Remove() makes the removal durable like a store: the record's header block is overwritten
//    with zeros in place (a tombstone in the segments, which are the tier's journal), so the
//    start-up scan no longer finds it; a record that was being written when its key was removed
//    is erased the same way once its write completes. Durable after the next Flush/Persist.
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
#include "host/nvme/segment_format.h"
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
  bool prefetch_on_lookup = true;  // Contains() of a chunk on NVMe starts reading it
  uint32_t flush_interval_ms = 1000;  // 0: flush only on Persist
  uint32_t queue_depth = 32;
  IoBackend backend = IoBackend::kAuto;
  bool allow_direct = true;           // false: buffered I/O even where O_DIRECT works
  uint64_t staging_bytes = 64ull << 20;    // header blocks, read buffers, compaction copies
  // Host-slot bytes that queued write-back may hold (at most a quarter of host_arena when given);
  // past it a demotion is copied into the staging pool, and dropped when that is full too.
  uint64_t writeback_bytes = 64ull << 20;
  // The host arena (HostTier::base(), capacity): registered with io_uring next to the staging
  // pool, so writes from its slots skip page pinning. Optional; must outlive the tier.
  BufferRegion host_arena;
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
  uint64_t writeback_bytes = 0;  // host-slot bytes held by write-back queued or in flight
};

class NvmeTier final : public tiering::LowerTier {
 public:
  static StatusOr<std::unique_ptr<NvmeTier>> Create(const NvmeTierOptions& options,
                                                    prometheus::Registry& registry);
  ~NvmeTier() override;

  bool Contains(const tiering::ChunkKey& key) override;
  Status Read(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint, void* out, uint64_t bytes,
              tiering::TransferPriority priority) override;
  bool Remove(const tiering::ChunkKey& key) override;
  bool promote_on_hit() const override { return options_.promote_on_hit; }

  // The eviction sink. Never blocks on I/O. Keeps `entry` until its record is written.
  void Demote(const tiering::ChunkIndex::EntryPtr& entry);
  // Blocks until a demotion of `bytes` fits in writeback_bytes (or `deadline`): for a producer
  // that would rather wait than have demotions dropped (kvt-bench). Clients' stores never call it.
  Status WaitForWriteBackRoom(uint64_t bytes, Deadline deadline);
  // Makes everything in `host` (and all write-back queued so far) durable, by `deadline`.
  Status Persist(const tiering::ChunkIndex* host, Deadline deadline);
  // Waits for the write-back queued so far and fdatasyncs what it wrote.
  Status Flush(Deadline deadline);

  NvmeCounters counters() const;
  const IoQueueCapabilities& queue_capabilities() const { return queue_->capabilities(); }
  bool host_arena_registered() const { return arena_registered_; }
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
  enum class WriteKind : uint8_t {
    kDemotion,    // a chunk leaving the host tier (or persisted from it)
    kCompaction,  // a live record copied forward; keeps its sequence
    kErase,       // zeros over the header block of a record whose key was removed
  };
  struct PendingWrite {
    WriteKind kind = WriteKind::kDemotion;
    tiering::ChunkKey key;
    tiering::Fingerprint fingerprint;
    uint64_t payload_bytes = 0;
    // With `source`: the 4 KiB header block (the payload is written from source's slot).
    // Without: the whole record, RecordBytes(payload_bytes). kErase: nullptr (zero_block_).
    std::unique_ptr<IoBuffer> buf;
    tiering::ChunkIndex::EntryPtr source;
    uint64_t held_bytes = 0;  // of writeback_bytes, while queued or in flight
    uint32_t parked = 0;      // times it waited for a reclaim to free a segment
    uint64_t ticket = 0;
    std::shared_ptr<PersistBatch> batch;
    uint64_t sequence = 0;    // kCompaction: the record's, kept, and checked against the index
    Location erase_at;        // kErase
    const char* payload() const { return source ? source->slot->data() : buf->data() + kRecordPayloadOffset; }
  };
  using PendingPtr = std::shared_ptr<PendingWrite>;

  static constexpr size_t kWriteBatch = 16;  // records per io_uring submission of write-back

  NvmeTier(const NvmeTierOptions& options, prometheus::Registry& registry);

  std::string SegmentPath(uint32_t id) const;
  Status Recover();
  Status OpenSegmentFile(Segment& s, bool create);
  Status WriteSegmentHeader(Segment& s, uint64_t generation);
  // Adds the segment's valid records to `found` (the highest sequence of a key wins) and the
  // records they outrank to `losers`.
  void ScanSegment(Segment& s, std::unordered_map<tiering::ChunkKey, Location, tiering::ChunkKeyHash>* found,
                   std::vector<std::pair<tiering::ChunkKey, Location>>* losers);

  enum class EnqueueResult { kQueued, kAlreadyThere, kNoRoom, kNoStaging };
  // Queues a record for write-back (requires !mu_); kAlreadyThere when the key is on NVMe or
  // queued, kNoRoom when its slot would take the slots held past hold_limit_.
  EnqueueResult Enqueue(PendingPtr w);
  // A demotion of `entry`, written from its slot (`from_slot`, when the slot suits O_DIRECT) or
  // from a staging copy; nullptr when the staging pool has no room.
  PendingPtr MakeDemotion(const tiering::ChunkIndex::EntryPtr& entry, bool from_slot);
  // Queues `entry` from its slot, or from a staging copy when the held slots are at the limit.
  EnqueueResult EnqueueDemotion(const tiering::ChunkIndex::EntryPtr& entry,
                                const std::shared_ptr<PersistBatch>& batch);
  // An erase of the record at `loc` (requires mu_; holds a write reference on its segment).
  PendingPtr MakeEraseLocked(const tiering::ChunkKey& key, const Location& loc, uint64_t ticket);
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
  struct ReadOp {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    IoRequest request;
    std::unique_ptr<IoBuffer> buf;  // the whole record
    Location loc;
  };
  using ReadOpPtr = std::shared_ptr<ReadOp>;
  static constexpr size_t kMaxPrefetches = 64;
  // Starts reading the record at `loc` into a staging buffer (a heap one too unless
  // `pooled_only`). The caller holds a reader reference on loc.segment, which the read gives
  // back when it ends; nullptr (reference still held) when there is no buffer.
  ReadOpPtr StartRead(const Location& loc, tiering::TransferPriority priority, bool pooled_only);
  // Waits for `op` and verifies the record; the payload is at buf->data() + kRecordPayloadOffset.
  StatusOr<std::unique_ptr<IoBuffer>> FinishRead(const tiering::ChunkKey& key, const ReadOpPtr& op,
                                                 Deadline deadline);
  // A read at prefetch priority whose result the next Read of `key` takes (requires mu_).
  void StartPrefetchLocked(const tiering::ChunkKey& key, const Location& loc);
  // Reads and verifies one record; the payload is at buf->data() + kRecordPayloadOffset.
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
  std::unique_ptr<IoBuffer> zero_block_;  // what an erase writes
  bool arena_registered_ = false;
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
  std::unordered_map<tiering::ChunkKey, ReadOpPtr, tiering::ChunkKeyHash> prefetches_;
  std::deque<tiering::ChunkKey> prefetch_order_;  // oldest first (may name taken ones)
  std::vector<PendingPtr> parked_;  // found no free segment while a reclaim ran: retried after it
  std::set<uint64_t> inflight_tickets_;
  uint64_t next_ticket_ = 1;
  uint64_t next_sequence_ = 1;
  uint64_t seal_counter_ = 0;
  uint64_t live_bytes_ = 0;
  uint64_t held_bytes_ = 0;  // sum of held_bytes of queued and in-flight writes
  uint64_t hold_limit_ = 0;  // writeback_bytes, at most a quarter of the host arena
  bool reclaim_scheduled_ = false;
  std::string disabled_reason_;
  std::atomic<bool> disabled_{false};

  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool stopping_ = false;
  std::thread flusher_;
};

}  // namespace kvt::nvme
