#include "tiering/lru_policy.h"

namespace kvt::tiering {

void LruPolicy::OnInsert(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = where_.find(key);
  if (it != where_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(key);
  where_.emplace(key, order_.begin());
}

void LruPolicy::OnAccess(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = where_.find(key);
  if (it != where_.end()) order_.splice(order_.begin(), order_, it->second);
}

void LruPolicy::OnRemove(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = where_.find(key);
  if (it == where_.end()) return;
  order_.erase(it->second);
  where_.erase(it);
}

std::vector<ChunkKey> LruPolicy::Candidates(size_t skip, size_t max) const {
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> out;
  out.reserve(std::min(max, order_.size()));
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < max; ++it) {
    if (skip > 0) {
      --skip;
      continue;
    }
    out.push_back(*it);
  }
  return out;
}

StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name) {
  if (name == "lru") return std::unique_ptr<EvictionPolicy>(std::make_unique<LruPolicy>());
  return InvalidArgument("unknown eviction policy '" + std::string(name) + "' (known: lru)");
}

}  // namespace kvt::tiering
