// PoolMapping — the daemon's GPU pool (gpu/device_pool.h) opened in a client process through
// CUDA IPC, plus the registration of the client's shared heap for DMA. Plain C++ interface; only
// pool_mapping.cu includes CUDA headers (pool_mapping_none.cc stands in without CUDA).
//
// Open selects the pool's device by PCI bus id for the duration of the call and restores the
// caller's current device. The mapping (and the heap registration) end with the object; device
// pointers into it must not be used afterwards. Not for the daemon's own process: CUDA refuses
// to open a handle where it was exported.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status_or.h"
#include "gpu/device_pool.h"

namespace kvt::gpu {

class PoolMapping {
 public:
  // UNSUPPORTED without CUDA, a driver or the pool's device in this process; other CUDA failures
  // as INTERNAL with the call named. `heap`/`heap_bytes` (may be null/0): host memory to register
  // with cudaHostRegister; a heap the driver refuses stays unregistered (heap_registered() says
  // so) and works the same, without the DMA fast path.
  static StatusOr<std::unique_ptr<PoolMapping>> Open(const PoolExport& pool, void* heap, uint64_t heap_bytes);
  ~PoolMapping();
  PoolMapping(const PoolMapping&) = delete;
  PoolMapping& operator=(const PoolMapping&) = delete;

  void* base() const { return base_; }
  uint64_t bytes() const { return bytes_; }
  int device() const { return device_; }       // this process's ordinal of the pool's device
  bool heap_registered() const { return heap_ != nullptr; }

 private:
  PoolMapping() = default;
  void* base_ = nullptr;
  uint64_t bytes_ = 0;
  int device_ = -1;
  void* heap_ = nullptr;  // registered with cudaHostRegister
};

}  // namespace kvt::gpu
