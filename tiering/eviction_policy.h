// EvictionPolicy — which resident chunk goes first under capacity pressure.
//
// The policy only orders keys; the caller decides whether a candidate may go (pinned chunks and
// chunks being read are skipped). Thread-safe: every method may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "common/status_or.h"
#include "tiering/chunk_key.h"

namespace kvt::tiering {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void OnInsert(const ChunkKey& key) = 0;
  virtual void OnAccess(const ChunkKey& key) = 0;
  virtual void OnRemove(const ChunkKey& key) = 0;
  // Up to `max` keys in eviction order, skipping the first `skip` (to page past unevictable ones).
  virtual std::vector<ChunkKey> Candidates(size_t skip, size_t max) const = 0;
  virtual std::string_view name() const = 0;
};

// "lru" is the only policy today; the factory is where others plug in.
StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name);

}  // namespace kvt::tiering
