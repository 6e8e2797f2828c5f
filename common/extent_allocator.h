// ExtentAllocator — hands out aligned byte ranges [offset, offset + bytes) of a fixed space.
//
// Used for chunk slots in the daemon's host arena and for buffers in a client's shared heap.
// Best fit over free extents kept in two ordered maps (by offset for coalescing, by size for
// fit), so allocation and free are O(log n) in the number of free extents. Capacity is a hard
// limit: Allocate fails instead of growing.
//
// Thread-safe (one internal mutex). Never touches the memory it manages.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace kvt {

class ExtentAllocator {
 public:
  // Manages [0, capacity); every allocation is aligned to and rounded up to `alignment`
  // (a power of two).
  ExtentAllocator(uint64_t capacity, uint64_t alignment);

  // Offset of a new extent of at least `bytes` bytes, or nullopt when no free extent fits.
  std::optional<uint64_t> Allocate(uint64_t bytes);
  // Returns an extent. `offset` and `bytes` must be exactly those of an Allocate (KVT_CHECKed
  // against double frees that overlap free space).
  void Free(uint64_t offset, uint64_t bytes);

  uint64_t capacity() const { return capacity_; }
  uint64_t used_bytes() const;
  uint64_t largest_free_extent() const;
  uint64_t RoundUp(uint64_t bytes) const { return (bytes + alignment_ - 1) & ~(alignment_ - 1); }

 private:
  void InsertFree(uint64_t offset, uint64_t bytes);  // requires mu_
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  const uint64_t capacity_;
  const uint64_t alignment_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> free_by_offset_;        // offset -> bytes
  std::multimap<uint64_t, uint64_t> free_by_size_;     // bytes -> offset
  uint64_t used_ = 0;
};

}  // namespace kvt
