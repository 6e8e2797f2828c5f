#include "tiering/chunk_index.h"

namespace kvt::tiering {

ChunkIndex::EntryPtr ChunkIndex::Find(const ChunkKey& key) const {
  const Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  return it == s.map.end() ? nullptr : it->second;
}

bool ChunkIndex::Contains(const ChunkKey& key) const {
  const Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  return s.map.count(key) != 0;
}

bool ChunkIndex::Insert(EntryPtr entry) {
  Shard& s = ShardFor(entry->key);
  std::lock_guard lock(s.mu);
  auto [it, inserted] = s.map.try_emplace(entry->key, std::move(entry));
  if (inserted) size_.fetch_add(1, std::memory_order_relaxed);
  return inserted;
}

ChunkIndex::EntryPtr ChunkIndex::Erase(const ChunkKey& key) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return nullptr;
  EntryPtr e = std::move(it->second);
  s.map.erase(it);
  size_.fetch_sub(1, std::memory_order_relaxed);
  if (e->pins > 0) pinned_.fetch_sub(1, std::memory_order_relaxed);
  return e;
}

ChunkIndex::EntryPtr ChunkIndex::EraseIfEvictable(const ChunkKey& key) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  // use_count() == 1 under the shard lock: only the map holds it, and new copies are made only
  // under this lock, so no reader can appear while we decide.
  if (it == s.map.end() || it->second->pins > 0 || it->second.use_count() != 1) return nullptr;
  EntryPtr e = std::move(it->second);
  s.map.erase(it);
  size_.fetch_sub(1, std::memory_order_relaxed);
  return e;
}

int64_t ChunkIndex::AdjustPins(const ChunkKey& key, int delta) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return -1;
  ChunkEntry& e = *it->second;
  if (delta < 0 && e.pins == 0) return -1;
  uint32_t before = e.pins;
  e.pins = static_cast<uint32_t>(static_cast<int64_t>(e.pins) + delta);
  if (before == 0 && e.pins > 0) pinned_.fetch_add(1, std::memory_order_relaxed);
  if (before > 0 && e.pins == 0) pinned_.fetch_sub(1, std::memory_order_relaxed);
  return e.pins;
}

void ChunkIndex::ForEach(const std::function<void(const ChunkEntry&)>& visit) const {
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    for (const auto& [key, entry] : s.map) visit(*entry);
  }
}

}  // namespace kvt::tiering
