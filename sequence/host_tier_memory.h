// HostTierMemory — where a sequence keeps its host tier: the fp16 K/V of offload and sparse layers
// and a sparse layer's transposed key copy (SequenceOptions::host_memory). Resident arrays (full
// layers, sinks and windows, sketches, device memory) never come from it.
//
// Implementations:
//   NewProcessHostTierMemory()  aligned heap memory of the engine's process (the CPU default)
//   a GPU sequence's default    pinned, mapped host memory (cudaHostAlloc; internal/gpu_layers.h)
//   client::HeapHostTierMemory  the client's shared heap, a memfd the daemon created and maps too
//                               (client/heap_host_tier_memory.h; kvt_sequence_open_in_client)
//
// Contract:
// - Allocate returns a region of at least `bytes` (> 0) bytes aligned to `alignment` (a power of
//   two, at most 4096), uninitialized. When the memory cannot hold it: RESOURCE_EXHAUSTED, with a
//   message that says how large the memory is and how to get more; nothing else changes.
// - `device` is the same bytes as a device pointer when the memory is mapped for DMA
//   (device_mapped()); a GPU sequence needs that, a CPU sequence ignores it.
// - Free takes a region exactly as Allocate returned it, once; an empty region is a no-op.
// - The object outlives every sequence (and region) that uses it. A sequence calls it from the
//   sequence's thread only; an object shared by several sequences must be thread-safe (both here
//   are). Neither call blocks on I/O.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status_or.h"

namespace kvt::sequence {

struct HostTierRegion {
  void* host = nullptr;    // the bytes, in this process
  void* device = nullptr;  // the same bytes as a device pointer; null when not mapped for DMA
  uint64_t bytes = 0;      // as requested
  uint64_t handle = 0;     // the implementation's own (the client heap: the offset)
};

class HostTierMemory {
 public:
  static constexpr uint64_t kMaxAlignment = 4096;

  virtual ~HostTierMemory() = default;
  virtual StatusOr<HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) = 0;
  virtual void Free(const HostTierRegion& region) = 0;
  // True when every region carries a device pointer.
  virtual bool device_mapped() const = 0;
};

// Aligned heap memory of this process (not mapped for DMA).
std::unique_ptr<HostTierMemory> NewProcessHostTierMemory();

// INVALID_ARGUMENT unless bytes > 0 and alignment is a power of two <= kMaxAlignment.
Status CheckHostTierRequest(uint64_t bytes, uint64_t alignment);

}  // namespace kvt::sequence
