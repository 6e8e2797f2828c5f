// NamespaceRegistry — every namespace a client has opened since start-up, by fingerprint, so
// operators can list what the daemon holds (kvtierctl ls) without per-key metrics.
// Thread-safe. Bounded: at most kMaxEntries namespaces are remembered (the oldest are kept).
#pragma once

#include <mutex>
#include <unordered_map>
#include <vector>

#include "protocol/ops.h"
#include "tiering/block_plane.h"
#include "tiering/chunk_index.h"

namespace kvt::daemon {

class NamespaceRegistry {
 public:
  static constexpr size_t kMaxEntries = 4096;

  void Register(const tiering::Namespace& ns);
  // One listing per namespace with its resident chunk count and bytes (walks the index).
  std::vector<protocol::NamespaceListing> List(const tiering::ChunkIndex& index) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<tiering::Fingerprint, protocol::NamespaceListing, tiering::ChunkKeyHash> entries_;
};

}  // namespace kvt::daemon
