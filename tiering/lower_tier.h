// LowerTier — a tier below the host tier (NVMe today, the remote store later) as the BlockStore
// sees it: presence, reads on a host miss, and removal. Demotion reaches it through the
// BlockStore's EvictionSink, wired by the daemon.
//
// Contract: every failure of a lower tier is a miss for the caller (NOT_FOUND or another error
// status; the BlockStore never passes one on to the engine) and never wrong data: a lower tier
// verifies what it reads before it copies a byte into `out`.
//
// Thread-safe: every method may be called from any session thread at once.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "tiering/chunk_key.h"
#include "tiering/transfer_priority.h"

namespace kvt::tiering {

class LowerTier {
 public:
  virtual ~LowerTier() = default;

  // Presence only (no I/O).
  virtual bool Contains(const ChunkKey& key) = 0;
  // Copies the chunk into out (exactly `bytes`, which must be its length). Blocks on the read,
  // bounded by the tier's own deadline.
  virtual Status Read(const ChunkKey& key, const Fingerprint& fingerprint, void* out, uint64_t bytes,
                      TransferPriority priority) = 0;
  // Forgets the chunk (a client's remove); whether the tier held it.
  virtual bool Remove(const ChunkKey& key) = 0;
  // Whether a chunk read on a host miss should be put back into the host tier.
  virtual bool promote_on_hit() const = 0;
};

}  // namespace kvt::tiering
