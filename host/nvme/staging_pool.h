// StagingPool — 4 KiB-aligned I/O buffers for the NVMe tier, carved from one locked mapping that
// the I/O queue registers (io_uring fixed buffers, next to the host arena). It holds record
// header blocks (the payload of a demotion is written from its host slot), a copy of an evicted
// chunk when the slots held by write-back are at their limit, compaction's copies, and reads,
// which land here first, to be verified before a byte reaches the caller.
//
// TryAllocate never blocks: nullptr when the pool is full (the caller drops the write-back, or
// takes an unpooled buffer for a read). IoBuffer frees itself. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>

#include "common/extent_allocator.h"
#include "common/status_or.h"

namespace kvt::nvme {

class StagingPool;

class IoBuffer {
 public:
  ~IoBuffer();
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;
  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  bool pooled() const { return pool_ != nullptr; }

 private:
  friend class StagingPool;
  IoBuffer(StagingPool* pool, char* data, uint64_t offset, uint64_t size)
      : pool_(pool), data_(data), offset_(offset), size_(size) {}
  StagingPool* pool_;  // nullptr: from the heap
  char* data_;
  uint64_t offset_;
  uint64_t size_;
};

class StagingPool {
 public:
  static StatusOr<std::unique_ptr<StagingPool>> Create(uint64_t bytes);
  ~StagingPool();

  std::unique_ptr<IoBuffer> TryAllocate(uint64_t bytes);
  // An aligned heap buffer, outside the pool (for reads when the pool is full). nullptr on ENOMEM.
  static std::unique_ptr<IoBuffer> AllocateUnpooled(uint64_t bytes);

  char* base() const { return base_; }
  uint64_t size() const { return bytes_; }
  uint64_t used_bytes() const { return allocator_->used_bytes(); }

 private:
  friend class IoBuffer;
  StagingPool() = default;
  char* base_ = nullptr;
  uint64_t bytes_ = 0;
  std::unique_ptr<ExtentAllocator> allocator_;
};

}  // namespace kvt::nvme
