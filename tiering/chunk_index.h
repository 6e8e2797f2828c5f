// ChunkIndex — the concurrent map from chunk key to the resident chunk.
//
// 64 shards, each an unordered_map under its own mutex, so lookups from different clients
// rarely contend. Entries are shared_ptrs: a reader copies the pointer under the shard lock and
// may then read the chunk's bytes without any lock; the bytes are freed only when the last
// holder lets go. "Evictable" is decided under the shard lock: not pinned and no reader holds it.
//
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "host/host_tier.h"
#include "tiering/chunk_key.h"

namespace kvt::tiering {

struct ChunkEntry {
  ChunkKey key;
  Fingerprint fingerprint;
  uint64_t bytes = 0;                     // payload length (the slot may be rounded up)
  std::unique_ptr<host::HostSlot> slot;   // where the bytes live
  uint32_t pins = 0;                      // guarded by the shard mutex
  std::atomic<uint32_t> retrievals{0};    // reads served from this entry (admission to lower tiers)
};

class ChunkIndex {
 public:
  using EntryPtr = std::shared_ptr<ChunkEntry>;

  EntryPtr Find(const ChunkKey& key) const;
  bool Contains(const ChunkKey& key) const;
  // Inserts unless the key is present; returns false (and keeps the old entry) if it was.
  bool Insert(EntryPtr entry);
  // Removes the entry regardless of pins and readers (readers keep their copy alive).
  EntryPtr Erase(const ChunkKey& key);
  // Removes the entry only if it is neither pinned nor held by a reader.
  EntryPtr EraseIfEvictable(const ChunkKey& key);
  // Adds `delta` (+1/-1) to the pin count and returns the new count; -1 if absent (or when
  // unpinning an unpinned entry).
  int64_t AdjustPins(const ChunkKey& key, int delta);

  uint64_t size() const { return size_.load(std::memory_order_relaxed); }
  uint64_t pinned() const { return pinned_.load(std::memory_order_relaxed); }
  // Visits every entry (shard by shard, each under its lock). For operator listings only.
  void ForEach(const std::function<void(const ChunkEntry&)>& visit) const;

 private:
  static constexpr size_t kShards = 64;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<ChunkKey, EntryPtr, ChunkKeyHash> map;
  };
  Shard& ShardFor(const ChunkKey& key) { return shards_[key.hi % kShards]; }
  const Shard& ShardFor(const ChunkKey& key) const { return shards_[key.hi % kShards]; }

  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> size_{0};
  std::atomic<uint64_t> pinned_{0};
};

}  // namespace kvt::tiering
