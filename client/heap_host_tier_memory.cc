#include "client/heap_host_tier_memory.h"

#include <string>
#include <utility>

#include "gpu/host_memory.h"
#include "protocol/region_layout.h"

namespace kvt::client {
namespace {

uint64_t HeapExtentBytes(uint64_t bytes) {
  return (bytes + protocol::kPageBytes - 1) / protocol::kPageBytes * protocol::kPageBytes;
}

}  // namespace

StatusOr<std::shared_ptr<HeapDmaRegistration>> HeapDmaRegistration::Open(const Connection& connection, int device) {
  std::shared_ptr<HeapDmaRegistration> r(new HeapDmaRegistration(connection.heap()));
  KVT_RETURN_IF_ERROR(gpu::RegisterMappedHostMemory(connection.heap(), connection.heap_bytes(), device,
                                                    &r->registered_here_)
                          .WithContext("registering the client's shared heap for DMA"));
  return r;
}

HeapDmaRegistration::~HeapDmaRegistration() {
  if (registered_here_) gpu::UnregisterHostMemory(heap_);
}

StatusOr<char*> HeapDmaRegistration::DeviceBase(int device) {
  std::lock_guard lock(mu_);
  if (auto it = device_bases_.find(device); it != device_bases_.end()) return it->second;
  void* base = nullptr;
  KVT_RETURN_IF_ERROR(gpu::MappedDevicePointer(heap_, device, &base).WithContext("the client's shared heap"));
  device_bases_[device] = static_cast<char*>(base);
  return static_cast<char*>(base);
}

HeapHostTierMemory::HeapHostTierMemory(Connection& connection, std::shared_ptr<HeapDmaRegistration> dma,
                                       char* device_base)
    : connection_(connection), dma_(std::move(dma)), device_base_(device_base) {}

StatusOr<sequence::HostTierRegion> HeapHostTierMemory::Allocate(uint64_t bytes, uint64_t alignment) {
  KVT_RETURN_IF_ERROR(sequence::CheckHostTierRequest(bytes, alignment));  // heap extents are page-aligned
  static_assert(protocol::kPageBytes % sequence::HostTierMemory::kMaxAlignment == 0);
  auto offset = connection_.AllocateHeap(bytes);
  if (!offset.ok()) {
    if (offset.status().code() != StatusCode::kResourceExhausted) return offset.status();
    const uint64_t heap = connection_.heap_bytes();
    return ResourceExhausted(
        "sequence host tier: the client's shared heap (" + std::to_string(heap) + " bytes, " +
        std::to_string(heap - connection_.heap_used_bytes()) + " free) has no room for " + std::to_string(bytes) +
        " more bytes; open the client with a larger kvt_client_options_t.heap_bytes (the daemon caps it at its "
        "max_heap), or keep fewer tokens in offload/sparse layers");
  }
  held_bytes_.fetch_add(HeapExtentBytes(bytes), std::memory_order_relaxed);
  char* host = connection_.heap() + *offset;
  void* device = device_base_ != nullptr ? device_base_ + *offset : nullptr;
  return sequence::HostTierRegion{host, device, bytes, *offset};
}

void HeapHostTierMemory::Free(const sequence::HostTierRegion& region) {
  if (region.host == nullptr) return;
  connection_.FreeHeap(region.handle, region.bytes);
  held_bytes_.fetch_sub(HeapExtentBytes(region.bytes), std::memory_order_relaxed);
}

}  // namespace kvt::client
