// Registering the daemon's host arena with the CUDA driver, so GPU copies from and to it run as
// DMA from pinned memory. Plain C++ interface; only gpu/host_memory.cu includes CUDA headers.
//
// Without a device (or in a build without CUDA) registration returns UNSUPPORTED and the caller
// carries on: the host tier works the same, only GPU transfers lose the pinned-memory fast path.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace kvt::gpu {

// Number of CUDA devices visible to this process (0 without a driver, a device, or CUDA).
int DeviceCount();

// cudaHostRegister(ptr, bytes, portable | mapped); UNSUPPORTED when there is no device.
Status RegisterHostMemory(void* ptr, size_t bytes);
// cudaHostUnregister; a no-op for memory that was not registered.
void UnregisterHostMemory(void* ptr);

}  // namespace kvt::gpu
