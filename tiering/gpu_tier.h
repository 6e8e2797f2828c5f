// GpuTier — chunks resident in the daemon's GPU pool, above the host tier.
//
// A chunk enters the GPU tier only when a client asks for it on the GPU (Acquire): it is copied
// from the host tier (straight from the registered arena) or read through the BlockStore from a
// lower tier, into an extent of the pool, and pinned for that client. The host copy, if any, stays
// where it is (the host tier decides about it as before). Unpinned GPU chunks are evicted in LRU
// order when space is needed (or by Evict); an evicted chunk that the host tier no longer holds is
// copied back and put into the host tier (demotion), so eviction from the GPU never loses bytes
// the host tier has room for. While a client holds a pin, the chunk's extent is never reused: a
// removed chunk that is still pinned is hidden at once and its extent returns at the last unpin.
//
// Thread-safe. One mutex serializes the tier, copies included (a first cut: GPU transfers of
// different clients do not overlap). Lock order: GpuTier before BlockStore; the BlockStore never
// calls back into the GPU tier.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/extent_allocator.h"
#include "common/status_or.h"
#include "tiering/block_store.h"
#include "tiering/chunk_key.h"
#include "tiering/device_memory.h"

namespace kvt::tiering {

// Extents of the pool are multiples of this (and aligned to it).
inline constexpr uint64_t kGpuExtentAlignment = 4096;

struct GpuTierCounters {
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t chunks = 0;
  uint64_t pinned_chunks = 0;
  uint64_t evictions = 0;
  uint64_t demotions = 0;  // evicted chunks copied back into the host tier
};

class GpuTier {
 public:
  // `memory` and `store` must outlive the tier.
  GpuTier(DeviceMemory* memory, BlockStore* store, prometheus::Registry& registry);
  ~GpuTier();

  // Makes the chunk GPU-resident (if it is not) and pins it once; returns its byte offset in the
  // pool. NOT_FOUND when no tier holds the chunk (or a removed one is still pinned by someone);
  // INVALID_ARGUMENT for another namespace or length; RESOURCE_EXHAUSTED when every resident
  // chunk is pinned or the chunk exceeds the pool; a copy failure as its Status.
  StatusOr<uint64_t> Acquire(const ChunkKey& key, const Fingerprint& fingerprint, uint64_t bytes);
  // Drops one pin; false if the chunk is not pinned here.
  bool Release(const ChunkKey& key);
  // Presence (a removed, still pinned chunk is absent).
  bool Contains(const ChunkKey& key) const;
  // Copies a GPU-resident chunk to host memory (a retrieve that missed the host tier).
  Status CopyOut(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t bytes);
  // Forgets the chunk (its extent returns at once, or at its last unpin); whether it was here.
  bool Remove(const ChunkKey& key);
  // Evicts unpinned chunks, least recently acquired first, until `bytes` are freed; the count.
  uint64_t Evict(uint64_t bytes);

  GpuTierCounters counters() const;

 private:
  struct Entry {
    Fingerprint fingerprint;
    uint64_t bytes = 0;
    uint64_t offset = 0;
    uint32_t pins = 0;
    bool removed = false;                // hidden; freed at the last unpin
    std::list<ChunkKey>::iterator lru;   // valid while pins == 0
  };
  // Frees at least `want` bytes of unpinned chunks (demoting each); returns the bytes freed.
  uint64_t EvictLocked(uint64_t want, uint64_t* evicted);
  void DemoteLocked(const ChunkKey& key, const Entry& e);
  void UpdateGaugesLocked();

  DeviceMemory* memory_;
  BlockStore* store_;
  ExtentAllocator allocator_;
  mutable std::mutex mu_;
  std::unordered_map<ChunkKey, Entry, ChunkKeyHash> entries_;
  std::list<ChunkKey> lru_;  // unpinned, live entries; front = least recent
  uint64_t pinned_ = 0;
  uint64_t evictions_total_ = 0;
  uint64_t demotions_total_ = 0;

  prometheus::Counter& evictions_;
  prometheus::Counter& promotions_;
  prometheus::Counter& promoted_bytes_;
  prometheus::Gauge& capacity_gauge_;
  prometheus::Gauge& used_gauge_;
  prometheus::Gauge& chunks_gauge_;
  prometheus::Gauge& pinned_gauge_;
};

}  // namespace kvt::tiering
