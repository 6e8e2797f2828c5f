#include "sequence/host_tier_memory.h"

#include <cstdlib>
#include <new>
#include <string>

namespace kvt::sequence {
namespace {

class ProcessHostTierMemory final : public HostTierMemory {
 public:
  StatusOr<HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) override {
    KVT_RETURN_IF_ERROR(CheckHostTierRequest(bytes, alignment));
    const uint64_t rounded = (bytes + alignment - 1) & ~(alignment - 1);  // aligned_alloc wants a multiple
    void* p = std::aligned_alloc(static_cast<size_t>(alignment), static_cast<size_t>(rounded));
    if (p == nullptr) {
      return ResourceExhausted("sequence host tier: process memory exhausted allocating " + std::to_string(bytes) +
                               " bytes");
    }
    return HostTierRegion{p, nullptr, bytes, 0};
  }
  void Free(const HostTierRegion& region) override { std::free(region.host); }
  bool device_mapped() const override { return false; }
};

}  // namespace

std::unique_ptr<HostTierMemory> NewProcessHostTierMemory() { return std::make_unique<ProcessHostTierMemory>(); }

Status CheckHostTierRequest(uint64_t bytes, uint64_t alignment) {
  if (bytes == 0) return InvalidArgument("host tier: allocation of 0 bytes");
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > HostTierMemory::kMaxAlignment) {
    return InvalidArgument("host tier: alignment " + std::to_string(alignment) + " is not a power of two <= 4096");
  }
  return Status::Ok();
}

}  // namespace kvt::sequence
