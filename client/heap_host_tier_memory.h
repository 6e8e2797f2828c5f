// A sequence's host tier in the client's shared heap (kvt_sequence_open_in_client): the memfd the
// daemon created for this session and maps too, so the daemon accounts it as the session's heap
// and takes it back when the client disconnects or dies.
//
// HeapDmaRegistration — the heap registered for DMA (cudaHostRegister, portable | mapped) for GPU
// sequences, once per client (kvt_client::heap_dma), unregistered when the client closes; a heap
// the client's GPU-pool mapping registered already is used as it is. Device pointers per device.
// Thread-safe.
//
// HeapHostTierMemory — sequence::HostTierMemory over Connection::AllocateHeap/FreeHeap: a region's
// host pointer is heap + offset and, with a registration, its device pointer the mapped heap's
// device base + offset (so kernels read it zero-copy). A heap too small for a growth is
// RESOURCE_EXHAUSTED naming the heap's size and kvt_client_options_t.heap_bytes. Thread-safe (the
// connection's heap allocator locks). The Connection (and the registration) must outlive it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "client/connection.h"
#include "sequence/host_tier_memory.h"

namespace kvt::client {

class HeapDmaRegistration {
 public:
  // Registers the connection's heap for DMA with `device` current. UNSUPPORTED without CUDA or a
  // device; IO_ERROR when the driver refuses.
  static StatusOr<std::shared_ptr<HeapDmaRegistration>> Open(const Connection& connection, int device);
  ~HeapDmaRegistration();
  HeapDmaRegistration(const HeapDmaRegistration&) = delete;
  HeapDmaRegistration& operator=(const HeapDmaRegistration&) = delete;

  // The heap's first byte as a device pointer of `device` (looked up once per device).
  StatusOr<char*> DeviceBase(int device);

 private:
  explicit HeapDmaRegistration(char* heap) : heap_(heap) {}
  char* heap_;
  bool registered_here_ = false;
  std::mutex mu_;
  std::map<int, char*> device_bases_;
};

class HeapHostTierMemory final : public sequence::HostTierMemory {
 public:
  // `device_base` null: regions carry no device pointer (a CPU sequence); else the heap's device
  // base from `dma`, which this object keeps alive.
  HeapHostTierMemory(Connection& connection, std::shared_ptr<HeapDmaRegistration> dma, char* device_base);

  StatusOr<sequence::HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) override;
  void Free(const sequence::HostTierRegion& region) override;
  bool device_mapped() const override { return device_base_ != nullptr; }
  // Heap bytes its live regions hold (page-rounded, as the heap allocates them).
  uint64_t held_bytes() const { return held_bytes_.load(std::memory_order_relaxed); }

 private:
  Connection& connection_;
  std::shared_ptr<HeapDmaRegistration> dma_;
  char* device_base_;
  std::atomic<uint64_t> held_bytes_{0};
};

}  // namespace kvt::client
