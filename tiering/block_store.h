// BlockStore — chunks by key over the host tier: put, get, remove, pin, evict.
//
// It knows nothing of tokens or prefixes (tiering/block_plane.h chains keys); it stores opaque
// payloads under 128-bit keys with a namespace fingerprint, enforces the host tier's capacity by
// evicting through the EvictionPolicy (never a pinned chunk, never one being read), and owns the
// metrics of what it does.
//
// Thread-safe; Get copies without holding any lock.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "common/status_or.h"
#include "host/host_tier.h"
#include "tiering/chunk_index.h"
#include "tiering/eviction_policy.h"
#include "tiering/lower_tier.h"

namespace kvt::tiering {

enum class EvictionReason { kCapacity, kOperator };

// Called with a chunk leaving the host tier for good (eviction): the hook for demotion to a
// lower tier (NVMe, remote). It runs on the evicting thread. The sink may keep `entry` (and so
// its slot) past the call, to write the bytes out without copying them; the host tier gets the
// space back when the last holder lets go, so a sink that keeps entries must bound what it keeps.
using EvictionSink = std::function<void(const ChunkIndex::EntryPtr& entry, EvictionReason reason)>;

struct BlockStoreCounters {
  uint64_t chunks = 0;
  uint64_t pinned_chunks = 0;
  uint64_t used_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
};

class BlockStore {
 public:
  BlockStore(host::HostTier* host, std::unique_ptr<EvictionPolicy> policy,
             prometheus::Registry& registry);

  enum class PutResult { kStored, kAlreadyPresent };
  // Copies `bytes` bytes into a new slot, evicting under pressure. RESOURCE_EXHAUSTED when
  // nothing evictable is left (everything pinned or being read) or the chunk exceeds capacity.
  StatusOr<PutResult> Put(const ChunkKey& key, const Fingerprint& fingerprint, const void* data,
                          uint64_t bytes);
  // Presence, counted as a hit or a miss; a host miss asks the lower tier, if any.
  bool Contains(const ChunkKey& key);
  // Copies the chunk into out (exactly its length). NOT_FOUND on a miss; INVALID_ARGUMENT when
  // out_bytes differs from the stored length or the fingerprint differs (never wrong data).
  // A host miss reads from the lower tier, if any (and puts the chunk back into the host tier
  // when the lower tier asks for promotion).
  Status Get(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t out_bytes);
  // Removes the chunk from the host tier and the lower tier.
  bool Remove(const ChunkKey& key);
  bool Pin(const ChunkKey& key);
  bool Unpin(const ChunkKey& key);
  // Evicts unpinned, unread chunks in policy order until `bytes` are freed; returns the count.
  uint64_t Evict(uint64_t bytes, EvictionReason reason);

  void set_eviction_sink(EvictionSink sink) { sink_ = std::move(sink); }
  // The tier asked on a host miss. Set before serving; must outlive the store's use.
  void set_lower_tier(LowerTier* lower) { lower_ = lower; }
  BlockStoreCounters counters() const;
  const ChunkIndex& index() const { return index_; }

 private:
  // A slot for `bytes`, evicting as needed; nullptr when impossible.
  std::unique_ptr<host::HostSlot> AllocateWithEviction(uint64_t bytes);
  // Evicts one batch of candidates; returns the bytes freed (0: nothing evictable).
  uint64_t EvictSome(uint64_t want_bytes, EvictionReason reason, uint64_t* evicted_chunks);
  void UpdateGauges();

  host::HostTier* host_;
  std::unique_ptr<EvictionPolicy> policy_;
  ChunkIndex index_;
  EvictionSink sink_;
  LowerTier* lower_ = nullptr;

  prometheus::Counter& hits_;
  prometheus::Counter& misses_;
  prometheus::Counter& evictions_capacity_;
  prometheus::Counter& evictions_operator_;
  prometheus::Counter& stored_chunks_;
  prometheus::Counter& stored_bytes_;
  prometheus::Counter& read_bytes_;
  prometheus::Gauge& capacity_bytes_;
  prometheus::Gauge& used_bytes_;
  prometheus::Gauge& chunk_count_;
  prometheus::Gauge& pinned_count_;
};

}  // namespace kvt::tiering
