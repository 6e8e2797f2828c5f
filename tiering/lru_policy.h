// LruPolicy — least recently used first. One mutex; O(1) per event.
#pragma once

#include <list>
#include <mutex>
#include <unordered_map>

#include "tiering/eviction_policy.h"

namespace kvt::tiering {

class LruPolicy final : public EvictionPolicy {
 public:
  void OnInsert(const ChunkKey& key) override;
  void OnAccess(const ChunkKey& key) override;
  void OnRemove(const ChunkKey& key) override;
  std::vector<ChunkKey> Candidates(size_t skip, size_t max) const override;
  std::string_view name() const override { return "lru"; }

 private:
  mutable std::mutex mu_;
  std::list<ChunkKey> order_;  // front: most recent
  std::unordered_map<ChunkKey, std::list<ChunkKey>::iterator, ChunkKeyHash> where_;
};

}  // namespace kvt::tiering
