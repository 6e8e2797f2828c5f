// gpu/host_memory.h for builds without CUDA.
#include "gpu/host_memory.h"

namespace kvt::gpu {

int DeviceCount() { return 0; }

Status RegisterHostMemory(void*, size_t) { return Unsupported("built without CUDA"); }

void UnregisterHostMemory(void*) {}

}  // namespace kvt::gpu
