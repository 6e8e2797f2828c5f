#include "host/host_tier.h"

#include <spdlog/spdlog.h>

#include "gpu/host_memory.h"
#include "host/numa_placement.h"

namespace kvt::host {

HostTier::~HostTier() {
  if (dma_registered_) gpu::UnregisterHostMemory(arena_.data());
}

HostSlot::~HostSlot() { tier_->allocator_->Free(offset_, bytes_); }

char* HostSlot::data() const { return tier_->base() + offset_; }

StatusOr<std::unique_ptr<HostTier>> HostTier::Create(const HostTierOptions& options) {
  if (options.capacity_bytes < (1u << 20)) {
    return InvalidArgument("host tier capacity must be at least 1 MiB, got " +
                           std::to_string(options.capacity_bytes));
  }
  std::unique_ptr<HostTier> tier(new HostTier());
  // Populate after binding, so the pages land on the chosen node.
  KVT_ASSIGN_OR_RETURN(tier->arena_, SharedMemory::Create("kvt-host-arena", options.capacity_bytes,
                                                          /*populate=*/false));
  auto node = BindToNumaNode(tier->arena_.data(), tier->arena_.size(), options.numa_node);
  if (node.ok()) {
    tier->numa_node_ = *node;
  } else {
    spdlog::warn("host tier: NUMA placement skipped: {}", node.status().ToString());
  }
  if (options.lock_memory) {
    Status s = tier->arena_.Lock();
    tier->locked_ = s.ok();
    if (!s.ok()) {
      spdlog::warn("host tier: arena not locked in memory ({}); raise RLIMIT_MEMLOCK (LimitMEMLOCK= "
                   "in the systemd unit) for pinned host memory", s.message());
    }
  }
  if (options.populate && !tier->locked_) {
    // mlock already faulted every page in; otherwise touch them now so the first stores don't.
    for (uint64_t off = 0; off < tier->arena_.size(); off += 4096) tier->arena_.data()[off] = 0;
  }
  Status registered = gpu::RegisterHostMemory(tier->arena_.data(), tier->arena_.size());
  tier->dma_registered_ = registered.ok();
  if (!registered.ok()) spdlog::info("host tier: not registered for GPU DMA ({})", registered.message());
  tier->allocator_ = std::make_unique<ExtentAllocator>(options.capacity_bytes, 4096);
  return tier;
}

std::unique_ptr<HostSlot> HostTier::Allocate(uint64_t bytes) {
  auto offset = allocator_->Allocate(bytes);
  if (!offset) return nullptr;
  return std::make_unique<HostSlot>(this, *offset, allocator_->RoundUp(bytes));
}

}  // namespace kvt::host
