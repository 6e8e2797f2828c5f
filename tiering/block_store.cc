#include "tiering/block_store.h"

#include <cstring>

#include "tiering/tier_metrics.h"

namespace kvt::tiering {

BlockStore::BlockStore(host::HostTier* host, std::unique_ptr<EvictionPolicy> policy,
                       prometheus::Registry& registry)
    : host_(host),
      policy_(std::move(policy)),
      hits_(metrics::AddCounter(registry, metrics::kHits, {{"tier", "host"}})),
      misses_(metrics::AddCounter(registry, metrics::kMisses, {{"tier", "host"}})),
      evictions_capacity_(metrics::AddCounter(registry, metrics::kEvictions,
                                              {{"tier", "host"}, {"reason", "capacity"}})),
      evictions_operator_(metrics::AddCounter(registry, metrics::kEvictions,
                                              {{"tier", "host"}, {"reason", "operator"}})),
      stored_chunks_(metrics::AddCounter(registry, metrics::kChunksStored, {{"tier", "host"}})),
      stored_bytes_(metrics::AddCounter(registry, metrics::kBytesWritten, {{"tier", "host"}})),
      read_bytes_(metrics::AddCounter(registry, metrics::kBytesRead, {{"tier", "host"}})),
      capacity_bytes_(metrics::AddGauge(registry, metrics::kCapacityBytes, {{"tier", "host"}})),
      used_bytes_(metrics::AddGauge(registry, metrics::kUsedBytes, {{"tier", "host"}})),
      chunk_count_(metrics::AddGauge(registry, metrics::kChunks, {{"tier", "host"}})),
      pinned_count_(metrics::AddGauge(registry, metrics::kPinnedChunks, {{"tier", "host"}})) {
  capacity_bytes_.Set(static_cast<double>(host_->capacity_bytes()));
}

void BlockStore::UpdateGauges() {
  used_bytes_.Set(static_cast<double>(host_->used_bytes()));
  chunk_count_.Set(static_cast<double>(index_.size()));
  pinned_count_.Set(static_cast<double>(index_.pinned()));
}

StatusOr<BlockStore::PutResult> BlockStore::Put(const ChunkKey& key, const Fingerprint& fingerprint,
                                                const void* data, uint64_t bytes) {
  if (index_.Contains(key)) {
    policy_->OnAccess(key);
    return PutResult::kAlreadyPresent;
  }
  if (bytes == 0) return InvalidArgument("empty chunk");
  if (bytes > host_->capacity_bytes()) {
    return ResourceExhausted("chunk of " + std::to_string(bytes) + " bytes exceeds the host tier capacity");
  }
  auto slot = AllocateWithEviction(bytes);
  if (!slot) {
    return ResourceExhausted("host tier full: every resident chunk is pinned or being read");
  }
  std::memcpy(slot->data(), data, bytes);
  auto entry = std::make_shared<ChunkEntry>();
  entry->key = key;
  entry->fingerprint = fingerprint;
  entry->bytes = bytes;
  entry->slot = std::move(slot);
  if (!index_.Insert(std::move(entry))) {
    // Another client stored the same chunk meanwhile; ours is dropped (its slot frees itself).
    return PutResult::kAlreadyPresent;
  }
  policy_->OnInsert(key);
  stored_chunks_.Increment();
  stored_bytes_.Increment(static_cast<double>(bytes));
  UpdateGauges();
  return PutResult::kStored;
}

bool BlockStore::Contains(const ChunkKey& key) {
  bool present = index_.Contains(key);
  (present ? hits_ : misses_).Increment();
  if (!present && lower_) present = lower_->Contains(key);
  return present;
}

Status BlockStore::Get(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t out_bytes) {
  ChunkIndex::EntryPtr entry = index_.Find(key);
  if (!entry) {
    misses_.Increment();
    if (lower_) {
      KVT_RETURN_IF_ERROR(lower_->Read(key, fingerprint, out, out_bytes, TransferPriority::kDemand));
      // A failed promotion (host tier full of pinned chunks) is no failure of the read.
      if (lower_->promote_on_hit()) Put(key, fingerprint, out, out_bytes).status().IgnoreError();
      return Status::Ok();
    }
    return NotFound("chunk " + key.ToHex() + " not resident");
  }
  if (!(entry->fingerprint == fingerprint)) {
    misses_.Increment();
    return InvalidArgument("chunk " + key.ToHex() + " belongs to another namespace");
  }
  if (entry->bytes != out_bytes) {
    misses_.Increment();
    return InvalidArgument("chunk " + key.ToHex() + " holds " + std::to_string(entry->bytes) +
                           " bytes, the request expects " + std::to_string(out_bytes));
  }
  std::memcpy(out, entry->slot->data(), out_bytes);
  entry->retrievals.fetch_add(1, std::memory_order_relaxed);
  hits_.Increment();
  read_bytes_.Increment(static_cast<double>(out_bytes));
  policy_->OnAccess(key);
  return Status::Ok();
}

bool BlockStore::Remove(const ChunkKey& key) {
  bool lower_had = false;
  if (lower_) lower_had = lower_->Remove(key);
  ChunkIndex::EntryPtr e = index_.Erase(key);
  if (!e) return lower_had;
  policy_->OnRemove(key);
  e.reset();  // frees the slot unless a reader still holds the entry
  UpdateGauges();
  return true;
}

// A pinned chunk leaves the eviction order and comes back (as most recent) when its last pin
// goes, so eviction never walks past pinned chunks: its cost does not grow with how many are pinned.
bool BlockStore::Pin(const ChunkKey& key) {
  int64_t pins = index_.AdjustPins(key, +1);
  if (pins < 0) return false;
  if (pins == 1) policy_->OnRemove(key);
  UpdateGauges();
  return true;
}

bool BlockStore::Unpin(const ChunkKey& key) {
  int64_t pins = index_.AdjustPins(key, -1);
  if (pins < 0) return false;
  if (pins == 0 && index_.Contains(key)) policy_->OnInsert(key);
  UpdateGauges();
  return true;
}

uint64_t BlockStore::EvictSome(uint64_t want_bytes, EvictionReason reason, uint64_t* evicted_chunks) {
  constexpr size_t kBatch = 32;
  uint64_t freed = 0;
  size_t skip = 0;
  while (freed < want_bytes) {
    std::vector<ChunkKey> candidates = policy_->Candidates(skip, kBatch);
    if (candidates.empty()) break;
    for (const ChunkKey& key : candidates) {
      ChunkIndex::EntryPtr e = index_.EraseIfEvictable(key);
      if (!e) {
        if (!index_.Contains(key)) {
          policy_->OnRemove(key);  // removed meanwhile: drop the stale order entry
        } else {
          ++skip;  // being read (or just pinned): page past it next time
        }
        continue;
      }
      policy_->OnRemove(key);
      if (sink_) sink_(e, reason);
      freed += e->slot->bytes();  // at once, or when the sink lets go of the entry
      ++*evicted_chunks;
      (reason == EvictionReason::kCapacity ? evictions_capacity_ : evictions_operator_).Increment();
      if (freed >= want_bytes) break;
    }
  }
  UpdateGauges();
  return freed;
}

std::unique_ptr<host::HostSlot> BlockStore::AllocateWithEviction(uint64_t bytes) {
  for (;;) {
    if (auto slot = host_->Allocate(bytes)) return slot;
    uint64_t evicted = 0;
    if (EvictSome(bytes, EvictionReason::kCapacity, &evicted) == 0) return host_->Allocate(bytes);
  }
}

uint64_t BlockStore::Evict(uint64_t bytes, EvictionReason reason) {
  uint64_t evicted = 0;
  EvictSome(bytes, reason, &evicted);
  return evicted;
}

BlockStoreCounters BlockStore::counters() const {
  BlockStoreCounters c;
  c.chunks = index_.size();
  c.pinned_chunks = index_.pinned();
  c.used_bytes = host_->used_bytes();
  c.capacity_bytes = host_->capacity_bytes();
  c.hits = static_cast<uint64_t>(hits_.Value());
  c.misses = static_cast<uint64_t>(misses_.Value());
  c.evictions = static_cast<uint64_t>(evictions_capacity_.Value() + evictions_operator_.Value());
  return c;
}

}  // namespace kvt::tiering
