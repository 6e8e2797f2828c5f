// HostTierArray<T> — a growable array of trivially copyable T in a sequence's host-tier memory
// (sequence/host_tier_memory.h): the offload and sparse layers' host tier on both backends.
//
// Growth doubles the capacity (or asks an eighth more than a bulk append needs, when that is
// more): the new range is allocated first. When
// the memory is exhausted (RESOURCE_EXHAUSTED: a full client heap) the growth asks for less, a
// quarter more, then a sixteenth more, then exactly what is needed (GrowthSteps): old and new
// ranges coexist during the copy, so doubling alone would stop an array at a third of the memory;
// the smaller steps take it to about half, copying more often only near the limit. When even the
// exact size does not fit, nothing changes and the old contents stay readable. Then
// `before_release` runs (it waits for whoever may still read the old range: the scheduler's
// write-backs on the CPU path, the sequence's stream on the GPU path; when it fails the new range
// is freed and nothing changes), then size() elements are copied and the old range is freed back. Pointers from data()/device_data() are valid until the next growth or Clear.
//
// Threading: growth and Clear on the owner's thread only, with nobody else touching the array;
// AppendReserved (no growth, so pointers stay put) may run on another thread (a write-back job)
// while the owner does not touch the array. Elements past size() are unspecified.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/status.h"
#include "common/status_or.h"
#include "sequence/host_tier_memory.h"

namespace kvt::sequence::internal {

// The capacities a growth to hold `asked` elements tries, in order, from `capacity`: doubling, or
// an eighth more than `asked` when that is more (a prompt's bulk append: its first decode tokens
// then find room instead of doubling every layer at once), and at least `floor`; then a quarter
// and a sixteenth more than `capacity`, then exactly `asked`; each at least `asked`, duplicates
// dropped. Only RESOURCE_EXHAUSTED moves on to the next.
inline std::vector<size_t> GrowthSteps(size_t asked, size_t capacity, size_t floor = 0) {
  std::vector<size_t> steps;
  const size_t first = std::max({2 * capacity, asked + asked / 8, floor});
  for (const size_t step : {first, capacity + capacity / 4, capacity + capacity / 16, asked}) {
    const size_t cap = std::max(step, asked);
    if (steps.empty() || cap < steps.back()) steps.push_back(cap);
  }
  return steps;
}

template <typename T>
class HostTierArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  static constexpr uint64_t kAlignment = 64;

  explicit HostTierArray(HostTierMemory* memory) : memory_(memory) {}
  ~HostTierArray() { Clear(); }
  HostTierArray(const HostTierArray&) = delete;
  HostTierArray& operator=(const HostTierArray&) = delete;

  T* data() const { return static_cast<T*>(region_.host); }
  const T* device_data() const { return static_cast<const T*>(region_.device); }  // null unless mapped
  T* mutable_device_data() const { return static_cast<T*>(region_.device); }      // for device writers
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  uint64_t capacity_bytes() const { return region_.bytes; }
  HostTierMemory* memory() const { return memory_; }

  // Capacity for at least `n` elements (GrowthSteps(n, capacity()) when it grows), keeping size().
  Status Reserve(size_t n, const std::function<Status()>& before_release = {}) {
    if (n <= capacity_) return Status::Ok();
    return Grow(GrowthSteps(n, capacity_), before_release);
  }
  // A new range of the first of `capacities` (elements, largest first) the memory can hold, whose
  // first size() elements are copied by `relayout(new, old, new capacity)` instead of a plain copy
  // (a layout that depends on the capacity); same failure rules as Reserve.
  Status Regrow(const std::vector<size_t>& capacities, const std::function<void(T*, const T*, size_t)>& relayout,
                const std::function<Status()>& before_release = {}) {
    return Grow(capacities, before_release, relayout);
  }
  Status Append(const T* src, size_t n, const std::function<Status()>& before_release = {}) {
    KVT_RETURN_IF_ERROR(Reserve(size_ + n, before_release));
    AppendReserved(src, n);
    return Status::Ok();
  }
  // Appends within the reserved capacity (KVT_CHECKed): never allocates, never moves.
  void AppendReserved(const T* src, size_t n) {
    KVT_CHECK(size_ + n <= capacity_, "host tier append past its reserved capacity");
    if (n > 0) std::memcpy(data() + size_, src, n * sizeof(T));
    size_ += n;
  }
  // Grows size() by `n` within the reserved capacity (KVT_CHECKed) for elements the caller writes
  // itself (a DMA into data(), a kernel through mutable_device_data()); returns the first new index.
  size_t ExtendReserved(size_t n) {
    KVT_CHECK(size_ + n <= capacity_, "host tier extended past its reserved capacity");
    const size_t first = size_;
    size_ += n;
    return first;
  }
  void set_size(size_t n) {
    KVT_CHECK(n <= capacity_, "host tier size past its capacity");
    size_ = n;
  }
  // Frees the range; the caller has waited for every reader.
  void Clear() {
    if (region_.host != nullptr) memory_->Free(region_);
    region_ = {};
    size_ = capacity_ = 0;
  }
  void Swap(HostTierArray& other) {
    std::swap(memory_, other.memory_);
    std::swap(region_, other.region_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  // A range for the first of `capacities` the memory holds: only RESOURCE_EXHAUSTED moves on to the
  // next, and the last one's error is returned. `*chosen` = the capacity tried last.
  StatusOr<HostTierRegion> AllocateFirstThatFits(const std::vector<size_t>& capacities, size_t* chosen) {
    for (size_t i = 0; i < capacities.size(); ++i) {
      *chosen = capacities[i];
      auto region = memory_->Allocate(static_cast<uint64_t>(capacities[i]) * sizeof(T), kAlignment);
      const bool last = i + 1 == capacities.size();
      if (region.ok() || region.status().code() != StatusCode::kResourceExhausted || last) return region;
    }
    return InvalidArgument("host tier growth without a capacity");
  }

  Status Grow(const std::vector<size_t>& capacities, const std::function<Status()>& before_release,
              const std::function<void(T*, const T*, size_t)>& relayout = {}) {
    size_t cap = 0;
    StatusOr<HostTierRegion> region = AllocateFirstThatFits(capacities, &cap);
    if (!region.ok()) return region.status();
    if (before_release) {
      if (Status s = before_release(); !s.ok()) {
        memory_->Free(*region);
        return s;
      }
    }
    T* grown = static_cast<T*>(region->host);
    if (relayout) {
      if (size_ > 0) relayout(grown, data(), cap);
    } else if (size_ > 0) {
      std::memcpy(grown, data(), size_ * sizeof(T));
    }
    if (region_.host != nullptr) memory_->Free(region_);
    region_ = *region;
    capacity_ = cap;
    return Status::Ok();
  }

  HostTierMemory* memory_;
  HostTierRegion region_;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace kvt::sequence::internal
