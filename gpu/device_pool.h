// DevicePool — the daemon's GPU memory pool: one cudaMalloc of the configured capacity on one
// device, exported to client processes through a legacy CUDA IPC handle. Plain C++ interface;
// only device_pool.cu includes CUDA headers (device_pool_none.cc stands in without CUDA).
//
// The pool is raw device memory: carving it into chunk extents is tiering::GpuTier's job.
// Copies are synchronous cudaMemcpy calls, bounds-checked against the pool; each sets the
// pool's device on the calling thread first, so any thread may call. Every CUDA failure is a
// Status (never an abort). A client opens the handle with gpu::PoolMapping (gpu/pool_mapping.h);
// CUDA refuses to open a handle in the process that exported it.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status_or.h"

namespace kvt::gpu {

inline constexpr size_t kIpcHandleBytes = 64;  // sizeof(cudaIpcMemHandle_t)
inline constexpr size_t kPciBusIdBytes = 32;   // "0000:65:00.0", NUL-terminated

// What a client needs to map the pool.
struct PoolExport {
  uint8_t ipc_handle[kIpcHandleBytes] = {};
  char pci_bus_id[kPciBusIdBytes] = {};  // identifies the device whatever CUDA_VISIBLE_DEVICES says
  int32_t device = 0;                    // the daemon's ordinal (informational)
  uint64_t bytes = 0;
};

class DevicePool {
 public:
  // UNSUPPORTED without CUDA, a driver or the device; RESOURCE_EXHAUSTED when the device lacks
  // `bytes` of free memory; INVALID_ARGUMENT for bytes == 0.
  static StatusOr<std::unique_ptr<DevicePool>> Create(uint64_t bytes, int device);
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  uint64_t bytes() const { return export_.bytes; }
  const PoolExport& exported() const { return export_; }

  // Host -> pool[offset, offset + bytes) and back; blocking. `src`/`dst` may be pageable or
  // pinned host memory (pinned, e.g. the registered host arena, runs as DMA).
  Status CopyToDevice(uint64_t offset, const void* src, uint64_t bytes);
  Status CopyToHost(void* dst, uint64_t offset, uint64_t bytes);

 private:
  DevicePool() = default;
  Status CheckRange(uint64_t offset, uint64_t bytes) const;

  void* base_ = nullptr;
  PoolExport export_;
};

}  // namespace kvt::gpu
