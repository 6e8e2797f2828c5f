#include "tiering/gpu_tier.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <vector>

#include "common/check.h"
#include "tiering/tier_metrics.h"

namespace kvt::tiering {

GpuTier::GpuTier(DeviceMemory* memory, BlockStore* store, prometheus::Registry& registry)
    : memory_(memory),
      store_(store),
      allocator_(memory->capacity_bytes() / kGpuExtentAlignment * kGpuExtentAlignment,
                 kGpuExtentAlignment),
      evictions_(metrics::AddCounter(registry, metrics::kEvictions,
                                     {{"tier", "gpu"}, {"reason", "capacity"}})),
      promotions_(metrics::AddCounter(registry, metrics::kChunksStored, {{"tier", "gpu"}})),
      promoted_bytes_(metrics::AddCounter(registry, metrics::kBytesWritten, {{"tier", "gpu"}})),
      capacity_gauge_(metrics::AddGauge(registry, metrics::kCapacityBytes, {{"tier", "gpu"}})),
      used_gauge_(metrics::AddGauge(registry, metrics::kUsedBytes, {{"tier", "gpu"}})),
      chunks_gauge_(metrics::AddGauge(registry, metrics::kChunks, {{"tier", "gpu"}})),
      pinned_gauge_(metrics::AddGauge(registry, metrics::kPinnedChunks, {{"tier", "gpu"}})) {
  capacity_gauge_.Set(static_cast<double>(allocator_.capacity()));
}

GpuTier::~GpuTier() = default;

void GpuTier::UpdateGaugesLocked() {
  used_gauge_.Set(static_cast<double>(allocator_.used_bytes()));
  chunks_gauge_.Set(static_cast<double>(entries_.size()));
  pinned_gauge_.Set(static_cast<double>(pinned_));
}

StatusOr<uint64_t> GpuTier::Acquire(const ChunkKey& key, const Fingerprint& fingerprint, uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    Entry& e = it->second;
    if (e.removed) return NotFound("chunk " + key.ToHex() + " was removed and is still pinned on the GPU");
    if (!(e.fingerprint == fingerprint)) return InvalidArgument("chunk " + key.ToHex() + " belongs to another namespace");
    if (e.bytes != bytes) {
      return InvalidArgument("chunk " + key.ToHex() + " holds " + std::to_string(e.bytes) + " bytes, the request expects " +
                             std::to_string(bytes));
    }
    if (e.pins++ == 0) {
      lru_.erase(e.lru);
      ++pinned_;
    }
    UpdateGaugesLocked();
    return e.offset;
  }
  if (bytes == 0) return InvalidArgument("empty chunk");
  if (allocator_.RoundUp(bytes) > allocator_.capacity()) {
    return ResourceExhausted("chunk of " + std::to_string(bytes) + " bytes exceeds the GPU pool of " +
                             std::to_string(allocator_.capacity()));
  }
  // The source: the host slot itself (pinned arena, copied by DMA; holding the entry keeps the
  // host tier from evicting it meanwhile), or a read through the BlockStore from a lower tier.
  std::vector<char> staging;
  const void* src = nullptr;
  ChunkIndex::EntryPtr host = store_->index().Find(key);
  if (host && host->fingerprint == fingerprint && host->bytes == bytes) {
    src = host->slot->data();
  } else {
    host.reset();
    staging.resize(bytes);
    KVT_RETURN_IF_ERROR(store_->Get(key, fingerprint, staging.data(), bytes));
    src = staging.data();
  }
  std::optional<uint64_t> offset;
  while (!(offset = allocator_.Allocate(bytes))) {
    uint64_t evicted = 0;
    if (EvictLocked(allocator_.RoundUp(bytes), &evicted) == 0) {
      return ResourceExhausted("GPU tier full: every resident chunk is pinned");
    }
  }
  if (Status s = memory_->CopyToDevice(*offset, src, bytes); !s.ok()) {
    allocator_.Free(*offset, bytes);
    return s.WithContext("promoting chunk " + key.ToHex() + " to the GPU");
  }
  Entry e;
  e.fingerprint = fingerprint;
  e.bytes = bytes;
  e.offset = *offset;
  e.pins = 1;
  entries_.emplace(key, e);
  ++pinned_;
  promotions_.Increment();
  promoted_bytes_.Increment(static_cast<double>(bytes));
  UpdateGaugesLocked();
  return *offset;
}

bool GpuTier::Release(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.pins == 0) return false;
  Entry& e = it->second;
  if (--e.pins == 0) {
    --pinned_;
    if (e.removed) {
      allocator_.Free(e.offset, e.bytes);
      entries_.erase(it);
    } else {
      e.lru = lru_.insert(lru_.end(), key);
    }
  }
  UpdateGaugesLocked();
  return true;
}

bool GpuTier::Contains(const ChunkKey& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it != entries_.end() && !it->second.removed;
}

Status GpuTier::CopyOut(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t bytes) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.removed) return NotFound("chunk " + key.ToHex() + " not on the GPU");
  const Entry& e = it->second;
  if (!(e.fingerprint == fingerprint)) return InvalidArgument("chunk " + key.ToHex() + " belongs to another namespace");
  if (e.bytes != bytes) return InvalidArgument("chunk " + key.ToHex() + " has another length");
  KVT_RETURN_IF_ERROR(memory_->CopyToHost(out, e.offset, bytes));
  if (e.pins == 0) lru_.splice(lru_.end(), lru_, e.lru);  // a read counts as a use
  return Status::Ok();
}

bool GpuTier::Remove(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.removed) return false;
  Entry& e = it->second;
  if (e.pins > 0) {
    e.removed = true;  // a client may still read it through its device pointer
  } else {
    lru_.erase(e.lru);
    allocator_.Free(e.offset, e.bytes);
    entries_.erase(it);
  }
  UpdateGaugesLocked();
  return true;
}

void GpuTier::DemoteLocked(const ChunkKey& key, const Entry& e) {
  if (store_->index().Contains(key)) return;  // the host tier still holds it: nothing to copy
  std::vector<char> bytes(e.bytes);
  Status s = memory_->CopyToHost(bytes.data(), e.offset, e.bytes);
  if (s.ok()) s = store_->Put(key, e.fingerprint, bytes.data(), e.bytes).status();
  if (!s.ok()) {
    spdlog::warn("gpu tier: chunk {} evicted without a host copy: {}", key.ToHex(), s.ToString());
    return;
  }
  ++demotions_total_;
}

uint64_t GpuTier::EvictLocked(uint64_t want, uint64_t* evicted) {
  uint64_t freed = 0;
  while (freed < want && !lru_.empty()) {
    ChunkKey key = lru_.front();
    lru_.pop_front();
    auto it = entries_.find(key);
    KVT_CHECK(it != entries_.end() && it->second.pins == 0);
    DemoteLocked(key, it->second);
    allocator_.Free(it->second.offset, it->second.bytes);
    freed += allocator_.RoundUp(it->second.bytes);
    entries_.erase(it);
    ++*evicted;
    ++evictions_total_;
    evictions_.Increment();
  }
  UpdateGaugesLocked();
  return freed;
}

uint64_t GpuTier::Evict(uint64_t bytes) {
  std::lock_guard lock(mu_);
  uint64_t evicted = 0;
  EvictLocked(bytes, &evicted);
  return evicted;
}

GpuTierCounters GpuTier::counters() const {
  std::lock_guard lock(mu_);
  GpuTierCounters c;
  c.capacity_bytes = allocator_.capacity();
  c.used_bytes = allocator_.used_bytes();
  c.chunks = entries_.size();
  c.pinned_chunks = pinned_;
  c.evictions = evictions_total_;
  c.demotions = demotions_total_;
  return c;
}

}  // namespace kvt::tiering
