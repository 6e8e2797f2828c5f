// HostTier — chunk slots in the daemon's host arena (pinned host memory).
//
// The arena is one memfd mapping of the configured capacity (a hard limit), locked in memory
// when RLIMIT_MEMLOCK allows (a warning otherwise), placed on a NUMA node with hwloc, and
// registered with the CUDA driver by gpu/ when a GPU is present. Slots are carved out of it by an
// ExtentAllocator and given back when their HostSlot is destroyed.
//
// The arena is private to the daemon: clients never map it (they exchange data through their own
// shared regions), so no client can read another tenant's chunks.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/extent_allocator.h"
#include "common/shared_memory.h"
#include "common/status_or.h"

namespace kvt::host {

struct HostTierOptions {
  uint64_t capacity_bytes = 0;
  bool lock_memory = true;    // mlock the arena (warns and carries on if the limit refuses)
  int numa_node = -1;         // -1: let hwloc pick (node 0 unless told of a GPU)
  bool populate = true;       // prefault the arena at start-up
};

class HostTier;

// One chunk's bytes in the arena. Frees itself.
class HostSlot {
 public:
  HostSlot(HostTier* tier, uint64_t offset, uint64_t bytes) : tier_(tier), offset_(offset), bytes_(bytes) {}
  ~HostSlot();
  HostSlot(const HostSlot&) = delete;
  HostSlot& operator=(const HostSlot&) = delete;

  char* data() const;
  uint64_t offset() const { return offset_; }
  uint64_t bytes() const { return bytes_; }

 private:
  HostTier* tier_;
  uint64_t offset_;
  uint64_t bytes_;
};

class HostTier {
 public:
  static StatusOr<std::unique_ptr<HostTier>> Create(const HostTierOptions& options);

  // A slot of `bytes`, or nullptr when no free extent fits (the caller evicts and retries).
  std::unique_ptr<HostSlot> Allocate(uint64_t bytes);

  char* base() const { return arena_.data(); }
  uint64_t capacity_bytes() const { return allocator_->capacity(); }
  uint64_t used_bytes() const { return allocator_->used_bytes(); }
  bool memory_locked() const { return locked_; }
  int numa_node() const { return numa_node_; }
  bool dma_registered() const { return dma_registered_; }
  ~HostTier();

 private:
  friend class HostSlot;
  HostTier() = default;

  SharedMemory arena_;
  std::unique_ptr<ExtentAllocator> allocator_;
  bool locked_ = false;
  bool dma_registered_ = false;  // registered with the CUDA driver (a GPU is present)
  int numa_node_ = -1;
};

}  // namespace kvt::host
