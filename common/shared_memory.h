// SharedMemory — a memfd and its mapping: the host arena and each client's shared region.
//
// Create() makes an anonymous memfd of a fixed size, sealed against shrinking and growing so a
// client holding the fd can never truncate it under the daemon (which would SIGBUS). Map()
// maps an fd received from the daemon, checking its size first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status_or.h"
#include "common/unique_fd.h"

namespace kvt {

class SharedMemory {
 public:
  SharedMemory() = default;
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // A new sealed memfd of `bytes`, mapped read-write. `populate` prefaults the pages.
  static StatusOr<SharedMemory> Create(const std::string& name, uint64_t bytes, bool populate);
  // Maps an existing memfd (taking ownership of the fd); its size must be exactly `bytes`.
  static StatusOr<SharedMemory> Map(UniqueFd fd, uint64_t bytes);

  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  bool Contains(const void* p, uint64_t bytes) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(data_);
    return a >= b && bytes <= size_ && a - b <= size_ - bytes;
  }

  // Tries to lock the pages in memory; returns the errno status (for a warning) if the limit
  // (RLIMIT_MEMLOCK) refuses.
  Status Lock();

  // Maps [offset, offset + bytes) of this mapping into the page tables for writing, allocating
  // pages nobody has touched yet, without changing their contents (the peer may be using them).
  // A process that maps a region another one populated otherwise takes a page fault on its own
  // first access to every page, which on a virtual machine costs more than copying the page.
  // Blocks for as long as the kernel takes; the range is clipped to the mapping.
  Status PrefaultForWrite(uint64_t offset, uint64_t bytes);

 private:
  UniqueFd fd_;
  char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace kvt
