// gpu/host_memory.h for builds without CUDA.
#include "gpu/host_memory.h"

namespace kvt::gpu {

int DeviceCount() { return 0; }

Status RegisterHostMemory(void*, size_t) { return Unsupported("built without CUDA"); }

void UnregisterHostMemory(void*) {}

Status RegisterMappedHostMemory(void*, size_t, int, bool* registered_here) {
  *registered_here = false;
  return Unsupported("built without CUDA");
}

Status MappedDevicePointer(void*, int, void** out) {
  *out = nullptr;
  return Unsupported("built without CUDA");
}

}  // namespace kvt::gpu
