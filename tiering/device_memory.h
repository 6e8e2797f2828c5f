// DeviceMemory — the GPU tier's view of its memory: a fixed range of device bytes and blocking
// copies in and out. The daemon implements it over gpu::DevicePool (daemon/gpu_wiring.h); tests
// implement it over host memory, so the tier's placement, pinning and demotion run without a GPU.
//
// Contract: copies are bounds-checked by the implementation and fail with a Status, never abort.
// Thread-safe.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace kvt::tiering {

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual uint64_t capacity_bytes() const = 0;
  // [offset, offset + bytes) of the device memory <- src; blocks until done.
  virtual Status CopyToDevice(uint64_t offset, const void* src, uint64_t bytes) = 0;
  // dst <- [offset, offset + bytes); blocks until done.
  virtual Status CopyToHost(void* dst, uint64_t offset, uint64_t bytes) = 0;
};

}  // namespace kvt::tiering
