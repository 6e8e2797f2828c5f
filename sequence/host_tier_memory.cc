#include "sequence/host_tier_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>

namespace kvt::sequence {
namespace {

// Regions of at least kHugePage bytes are anonymous mappings aligned to 2 MiB and advised
// MADV_HUGEPAGE (honoured where transparent huge pages are "madvise" or "always"): a layer's K/V
// is then faulted in 2 MiB at a time and read through far fewer TLB entries. A growth touches
// every page of the new range during its copy; with 4 KiB pages the first decode token after a
// 4K-token prompt (every layer's arrays doubling) took 2 s in this project's VM, most of it in
// page faults. Smaller regions come from the heap. Which one a region is follows from its size,
// so Free needs nothing else.
class ProcessHostTierMemory final : public HostTierMemory {
 public:
  StatusOr<HostTierRegion> Allocate(uint64_t bytes, uint64_t alignment) override {
    KVT_RETURN_IF_ERROR(CheckHostTierRequest(bytes, alignment));
    if (bytes >= kHugePage) return MapHuge(bytes);
    const uint64_t rounded = (bytes + alignment - 1) & ~(alignment - 1);  // aligned_alloc wants a multiple
    void* p = std::aligned_alloc(static_cast<size_t>(alignment), static_cast<size_t>(rounded));
    if (p == nullptr) return Exhausted(bytes);
    return HostTierRegion{p, nullptr, bytes, 0};
  }
  void Free(const HostTierRegion& region) override {
    if (region.bytes >= kHugePage) {
      munmap(region.host, static_cast<size_t>(HugeRounded(region.bytes)));
    } else {
      std::free(region.host);
    }
  }
  bool device_mapped() const override { return false; }

 private:
  static constexpr uint64_t kHugePage = uint64_t{2} << 20;
  static uint64_t HugeRounded(uint64_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }
  static Status Exhausted(uint64_t bytes) {
    return ResourceExhausted("sequence host tier: process memory exhausted allocating " + std::to_string(bytes) +
                             " bytes");
  }
  // A mapping of HugeRounded(bytes) starting on a 2 MiB boundary: map 2 MiB more, unmap the ends.
  static StatusOr<HostTierRegion> MapHuge(uint64_t bytes) {
    const size_t size = static_cast<size_t>(HugeRounded(bytes));
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return Exhausted(bytes);
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) & ~static_cast<uintptr_t>(kHugePage - 1);
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + size + kHugePage;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    void* p = reinterpret_cast<void*>(aligned);
    (void)madvise(p, size, MADV_HUGEPAGE);  // advice only: without THP it stays 4 KiB pages
    return HostTierRegion{p, nullptr, bytes, 0};
  }
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
