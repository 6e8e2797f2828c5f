#include "gpu/host_memory.h"

#include <cuda_runtime.h>

#include <string>

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

namespace {

// Runs `call` with `device` current, then restores the caller's current device.
template <typename Call>
Status OnDevice(int device, Call call) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) {
    cudaGetLastError();
    previous = -1;
  }
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return InvalidArgument("cudaSetDevice(" + std::to_string(device) + "): " + cudaGetErrorString(e));
  }
  Status s = call();
  if (previous >= 0 && previous != device && cudaSetDevice(previous) != cudaSuccess) cudaGetLastError();
  return s;
}

}  // namespace

Status RegisterMappedHostMemory(void* ptr, size_t bytes, int device, bool* registered_here) {
  *registered_here = false;
  if (DeviceCount() == 0) return Unsupported("no CUDA device: host memory not registered for DMA");
  return OnDevice(device, [&]() -> Status {
    cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable | cudaHostRegisterMapped);
    if (e == cudaErrorHostMemoryAlreadyRegistered) {
      cudaGetLastError();
      return Status::Ok();
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      return IoError(std::string("cudaHostRegister(mapped): ") + cudaGetErrorString(e));
    }
    *registered_here = true;
    return Status::Ok();
  });
}

Status MappedDevicePointer(void* ptr, int device, void** out) {
  *out = nullptr;
  if (DeviceCount() == 0) return Unsupported("no CUDA device: no device pointer for host memory");
  return OnDevice(device, [&]() -> Status {
    cudaError_t e = cudaHostGetDevicePointer(out, ptr, 0);
    if (e != cudaSuccess) {
      cudaGetLastError();
      *out = nullptr;
      return IoError(std::string("cudaHostGetDevicePointer: ") + cudaGetErrorString(e));
    }
    return Status::Ok();
  });
}

}  // namespace kvt::gpu
