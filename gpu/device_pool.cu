#include "gpu/device_pool.h"

#include <cuda_runtime.h>

#include <cstring>
#include <utility>
#include <string>

#include "gpu/kernels/cuda_status.h"

namespace kvt::gpu {

static_assert(sizeof(cudaIpcMemHandle_t) == kIpcHandleBytes);

StatusOr<std::unique_ptr<DevicePool>> DevicePool::Create(uint64_t bytes, int device) {
  if (bytes == 0) return InvalidArgument("GPU pool of 0 bytes");
  const int devices = DeviceCount();
  if (devices == 0) return Unsupported("no CUDA device (or no driver) visible to kv-tierd");
  if (device < 0 || device >= devices) {
    return InvalidArgument("GPU device " + std::to_string(device) + " does not exist (" + std::to_string(devices) +
                           " visible)");
  }
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  std::unique_ptr<DevicePool> pool(new DevicePool());
  cudaError_t err = cudaMalloc(&pool->base_, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    pool->base_ = nullptr;
    return CudaStatus(err, "cudaMalloc(GPU pool)");
  }
  pool->export_.bytes = bytes;
  pool->export_.device = device;
  cudaIpcMemHandle_t handle;
  KVT_CUDA_RETURN_IF_ERROR(cudaIpcGetMemHandle(&handle, pool->base_));
  std::memcpy(pool->export_.ipc_handle, &handle, sizeof handle);
  KVT_CUDA_RETURN_IF_ERROR(cudaDeviceGetPCIBusId(pool->export_.pci_bus_id, kPciBusIdBytes, device));
  pool->export_.pci_bus_id[kPciBusIdBytes - 1] = '\0';
  return std::move(pool);
}

DevicePool::~DevicePool() {
  if (base_ == nullptr) return;
  if (cudaSetDevice(export_.device) != cudaSuccess || cudaFree(base_) != cudaSuccess) (void)cudaGetLastError();
}

Status DevicePool::CheckRange(uint64_t offset, uint64_t bytes) const {
  if (offset > export_.bytes || bytes > export_.bytes - offset) {
    return InvalidArgument("GPU pool range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                           ") is outside the pool of " + std::to_string(export_.bytes) + " bytes");
  }
  return Status::Ok();
}

Status DevicePool::CopyToDevice(uint64_t offset, const void* src, uint64_t bytes) {
  KVT_RETURN_IF_ERROR(CheckRange(offset, bytes));
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(export_.device));
  Status s = CudaStatus(cudaMemcpy(static_cast<char*>(base_) + offset, src, bytes, cudaMemcpyHostToDevice),
                        "cudaMemcpy(host -> GPU pool)");
  if (!s.ok()) {
    (void)cudaGetLastError();
    return s;
  }
  // From pageable memory cudaMemcpy may return before the DMA has landed; a client reads the
  // bytes as soon as we answer, so wait for them.
  Status synced = CudaStatus(cudaStreamSynchronize(0), "cudaStreamSynchronize(after host -> GPU pool)");
  if (!synced.ok()) (void)cudaGetLastError();
  return synced;
}

Status DevicePool::CopyToHost(void* dst, uint64_t offset, uint64_t bytes) {
  KVT_RETURN_IF_ERROR(CheckRange(offset, bytes));
  KVT_CUDA_RETURN_IF_ERROR(cudaSetDevice(export_.device));
  Status s = CudaStatus(cudaMemcpy(dst, static_cast<const char*>(base_) + offset, bytes, cudaMemcpyDeviceToHost),
                        "cudaMemcpy(GPU pool -> host)");
  if (!s.ok()) (void)cudaGetLastError();
  return s;
}

}  // namespace kvt::gpu
