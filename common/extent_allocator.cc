#include "common/extent_allocator.h"

#include "common/check.h"

namespace kvt {

ExtentAllocator::ExtentAllocator(uint64_t capacity, uint64_t alignment)
    : capacity_(capacity & ~(alignment - 1)), alignment_(alignment) {
  KVT_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0, "alignment must be a power of two");
  if (capacity_ > 0) InsertFree(0, capacity_);
}

std::optional<uint64_t> ExtentAllocator::Allocate(uint64_t bytes) {
  if (bytes == 0 || bytes > capacity_) return std::nullopt;
  bytes = RoundUp(bytes);
  std::lock_guard lock(mu_);
  auto fit = free_by_size_.lower_bound(bytes);
  if (fit == free_by_size_.end()) return std::nullopt;
  uint64_t offset = fit->second;
  uint64_t extent = fit->first;
  free_by_size_.erase(fit);
  free_by_offset_.erase(offset);
  if (extent > bytes) {
    free_by_offset_.emplace(offset + bytes, extent - bytes);
    free_by_size_.emplace(extent - bytes, offset + bytes);
  }
  used_ += bytes;
  return offset;
}

void ExtentAllocator::Free(uint64_t offset, uint64_t bytes) {
  bytes = RoundUp(bytes);
  std::lock_guard lock(mu_);
  KVT_CHECK(offset + bytes <= capacity_ && used_ >= bytes, "free outside the allocator");
  used_ -= bytes;
  InsertFree(offset, bytes);
}

void ExtentAllocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  auto [lo, hi] = free_by_size_.equal_range(it->second);
  for (auto s = lo; s != hi; ++s) {
    if (s->second == it->first) {
      free_by_size_.erase(s);
      break;
    }
  }
  free_by_offset_.erase(it);
}

void ExtentAllocator::InsertFree(uint64_t offset, uint64_t bytes) {
  // Coalesce with the neighbours on both sides.
  auto next = free_by_offset_.lower_bound(offset);
  KVT_CHECK(next == free_by_offset_.end() || offset + bytes <= next->first, "double free (overlaps next)");
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    KVT_CHECK(prev->first + prev->second <= offset, "double free (overlaps previous)");
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      EraseFree(prev);
    }
  }
  next = free_by_offset_.lower_bound(offset);
  if (next != free_by_offset_.end() && offset + bytes == next->first) {
    bytes += next->second;
    EraseFree(next);
  }
  free_by_offset_.emplace(offset, bytes);
  free_by_size_.emplace(bytes, offset);
}

uint64_t ExtentAllocator::used_bytes() const {
  std::lock_guard lock(mu_);
  return used_;
}

uint64_t ExtentAllocator::largest_free_extent() const {
  std::lock_guard lock(mu_);
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

}  // namespace kvt
