// PrefixTier — a tier asked for whole runs of chained keys at once: the remote store shared by
// many nodes (host/remote/remote_tier.h). The BlockPlane consults it after the local tiers
// (host, then NVMe through the BlockStore) miss, for everything that remains of the prefix, so
// one network round trip answers the whole tail.
//
// Contract: every failure is a miss (a shorter count), never an error to the engine and never
// wrong data: ReadPrefix verifies each value before it copies a byte into `out`. Every method is
// bounded by the tier's own deadline. Offer never blocks on I/O.
//
// Thread-safe: every method may be called from any session thread at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "tiering/chunk_key.h"

namespace kvt::tiering {

class PrefixTier {
 public:
  virtual ~PrefixTier() = default;

  // How many of `keys`, counted from keys[0], the tier holds.
  virtual uint64_t CountPresent(const Fingerprint& fingerprint, std::span<const ChunkKey> keys) = 0;
  // Copies keys[0], keys[1], ... (chunk_bytes each) into out until the first miss or
  // unverifiable value; returns how many were copied.
  virtual uint64_t ReadPrefix(const Fingerprint& fingerprint, std::span<const ChunkKey> keys, char* out,
                              uint64_t chunk_bytes) = 0;
  // A chunk the local tiers now hold, chunk `depth` of its prefix (0 = first). The tier decides
  // by its admission rule whether to write it behind; `data` stays valid while the tier holds
  // the pointer (it shares ownership of the host slot).
  virtual void Offer(const ChunkKey& key, const Fingerprint& fingerprint, uint64_t depth,
                     std::shared_ptr<const char> data, uint64_t bytes) = 0;
  // Forgets chunks (a client's remove), including writes still queued for them.
  virtual void Remove(std::span<const ChunkKey> keys) = 0;
};

}  // namespace kvt::tiering
