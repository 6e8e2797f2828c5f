#include "host/nvme/staging_pool.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>

#include "host/nvme/segment_format.h"

namespace kvt::nvme {

IoBuffer::~IoBuffer() {
  if (pool_) pool_->allocator_->Free(offset_, size_);
  else std::free(data_);
}

StatusOr<std::unique_ptr<StagingPool>> StagingPool::Create(uint64_t bytes) {
  bytes = RoundUpBlock(bytes);
  if (bytes == 0) return InvalidArgument("staging pool must not be empty");
  std::unique_ptr<StagingPool> p(new StagingPool());
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) return ErrnoStatus("mmap of the NVMe staging pool", errno);
  ::mlock(m, bytes);  // best effort: registration with io_uring pins the pages anyway
  p->base_ = static_cast<char*>(m);
  p->bytes_ = bytes;
  p->allocator_ = std::make_unique<ExtentAllocator>(bytes, kBlockBytes);
  return p;
}

StagingPool::~StagingPool() {
  if (base_) ::munmap(base_, bytes_);
}

std::unique_ptr<IoBuffer> StagingPool::TryAllocate(uint64_t bytes) {
  auto off = allocator_->Allocate(bytes);
  if (!off) return nullptr;
  return std::unique_ptr<IoBuffer>(new IoBuffer(this, base_ + *off, *off, allocator_->RoundUp(bytes)));
}

std::unique_ptr<IoBuffer> StagingPool::AllocateUnpooled(uint64_t bytes) {
  bytes = RoundUpBlock(bytes);
  void* p = std::aligned_alloc(kBlockBytes, bytes);
  if (!p) return nullptr;
  return std::unique_ptr<IoBuffer>(new IoBuffer(nullptr, static_cast<char*>(p), 0, bytes));
}

}  // namespace kvt::nvme
