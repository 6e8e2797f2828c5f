#include "gpu/host_memory.h"

#include <cuda_runtime.h>

namespace kvt::gpu {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver/device" error
    return 0;
  }
  return n;
}

Status RegisterHostMemory(void* ptr, size_t bytes) {
  if (DeviceCount() == 0) return Unsupported("no CUDA device: host memory not registered for DMA");
  cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable | cudaHostRegisterMapped);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return IoError(std::string("cudaHostRegister: ") + cudaGetErrorString(e));
  }
  return Status::Ok();
}

void UnregisterHostMemory(void* ptr) {
  if (DeviceCount() == 0) return;
  if (cudaHostUnregister(ptr) != cudaSuccess) cudaGetLastError();
}

}  // namespace kvt::gpu
