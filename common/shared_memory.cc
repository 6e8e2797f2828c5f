#include "common/shared_memory.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace kvt {

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : fd_(std::move(o.fd_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, size_);
    fd_ = std::move(o.fd_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  if (data_) ::munmap(data_, size_);
}

StatusOr<SharedMemory> SharedMemory::Create(const std::string& name, uint64_t bytes, bool populate) {
  if (bytes == 0) return InvalidArgument("shared memory size must be positive");
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus("memfd_create", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return ErrnoStatus("ftruncate(memfd)", errno);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return ErrnoStatus("fcntl(F_ADD_SEALS)", errno);
  }
  int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoStatus("mmap(memfd)", errno);
  SharedMemory m;
  m.fd_ = std::move(fd);
  m.data_ = static_cast<char*>(p);
  m.size_ = bytes;
  return m;
}

StatusOr<SharedMemory> SharedMemory::Map(UniqueFd fd, uint64_t bytes) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat(shared region)", errno);
  if (static_cast<uint64_t>(st.st_size) != bytes) {
    return InvalidArgument("shared region is " + std::to_string(st.st_size) + " bytes, expected " +
                           std::to_string(bytes));
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoStatus("mmap(shared region)", errno);
  SharedMemory m;
  m.fd_ = std::move(fd);
  m.data_ = static_cast<char*>(p);
  m.size_ = bytes;
  return m;
}

Status SharedMemory::PrefaultForWrite(uint64_t offset, uint64_t bytes) {
  if (offset >= size_) return Status::Ok();
  bytes = std::min(bytes, size_ - offset);
  char* begin = data_ + offset;
#ifdef MADV_POPULATE_WRITE
  if (::madvise(begin, bytes, MADV_POPULATE_WRITE) == 0) return Status::Ok();
  if (errno != EINVAL) return ErrnoStatus("madvise(MADV_POPULATE_WRITE)", errno);
#endif
  // Kernels before 5.14: a read fault maps the page, and a shared writable mapping of a memfd
  // maps it writable (shmem asks for no write notification). Reading leaves the contents alone.
  for (uint64_t off = 0; off < bytes; off += 4096) {
    (void)*static_cast<volatile const char*>(begin + off);
  }
  return Status::Ok();
}

Status SharedMemory::Lock() {
  if (::mlock(data_, size_) != 0) return ErrnoStatus("mlock", errno);
  return Status::Ok();
}

}  // namespace kvt
