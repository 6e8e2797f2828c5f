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

// For zero-copy kernels reading host memory (a sequence's host tier in a client's shared heap):
// cudaHostRegister(ptr, bytes, portable | mapped) made with `device` current (the caller's current
// device is restored). A range registered already (by this client's PoolMapping, say) is used as
// it is: *registered_here is then false and the caller must not unregister it. UNSUPPORTED
// without a device; a driver refusal as IO_ERROR naming the call.
Status RegisterMappedHostMemory(void* ptr, size_t bytes, int device, bool* registered_here);
// The device pointer of mapped host memory `ptr` (registered or cudaHostAlloc'd) as seen from
// `device`; interior addresses map to the same offset. `*out` receives it.
Status MappedDevicePointer(void* ptr, int device, void** out);

}  // namespace kvt::gpu
