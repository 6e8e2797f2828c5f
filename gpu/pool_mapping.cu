#include "gpu/pool_mapping.h"

#include <cuda_runtime.h>

#include <cstring>
#include <utility>

#include "gpu/kernels/cuda_status.h"

namespace kvt::gpu {

StatusOr<std::unique_ptr<PoolMapping>> PoolMapping::Open(const PoolExport& pool, void* heap, uint64_t heap_bytes) {
  if (DeviceCount() == 0) return Unsupported("no CUDA device (or no driver) visible to this process");
  char bus_id[kPciBusIdBytes];
  std::memcpy(bus_id, pool.pci_bus_id, kPciBusIdBytes);
  bus_id[kPciBusIdBytes - 1] = '\0';
  int device = -1;
  cudaError_t err = cudaDeviceGetByPCIBusId(&device, bus_id);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return Unsupported(std::string("the GPU pool's device ") + bus_id + " is not visible to this process (" +
                       cudaGetErrorName(err) + ")");
  }
  int previous = 0;
  KVT_CUDA_RETURN_IF_ERROR(cudaGetDevice(&previous));
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  std::unique_ptr<PoolMapping> m(new PoolMapping());
  cudaIpcMemHandle_t handle;
  std::memcpy(&handle, pool.ipc_handle, sizeof handle);
  err = cudaIpcOpenMemHandle(&m->base_, handle, cudaIpcMemLazyEnablePeerAccess);
  Status opened = CudaStatus(err, "cudaIpcOpenMemHandle(GPU pool)");
  if (!opened.ok()) {
    (void)cudaGetLastError();
    m->base_ = nullptr;
  } else {
    m->bytes_ = pool.bytes;
    m->device_ = device;
    if (heap != nullptr && heap_bytes > 0 &&
        cudaHostRegister(heap, heap_bytes, cudaHostRegisterPortable | cudaHostRegisterMapped) == cudaSuccess) {
      m->heap_ = heap;
    } else {
      (void)cudaGetLastError();  // the heap works unregistered, only without the DMA fast path
    }
  }
  if (cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
  if (!opened.ok()) return opened;
  return std::move(m);
}

PoolMapping::~PoolMapping() {
  if (heap_ != nullptr && cudaHostUnregister(heap_) != cudaSuccess) (void)cudaGetLastError();
  if (base_ != nullptr && cudaIpcCloseMemHandle(base_) != cudaSuccess) (void)cudaGetLastError();
}

}  // namespace kvt::gpu
