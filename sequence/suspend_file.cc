#include "sequence/suspend_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <bit>
#include <cerrno>
#include <cstring>

namespace kvt::sequence {
namespace {

static_assert(std::endian::native == std::endian::little, "suspend files are little-endian");

uint64_t HeaderChecksum(SuspendFileHeader h) {
  h.header_xxh3 = 0;
  return XXH3_64bits(&h, sizeof h);
}

// errno of a write, as the caller should see it: out of space in any form is RESOURCE_EXHAUSTED.
Status WriteErrno(std::string_view call, int err) {
  if (err == EFBIG) return ResourceExhausted(std::string(call) + ": " + std::strerror(err));
  return ErrnoStatus(call, err);
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status SuspendFileIo::PWrite(int fd, std::span<const uint8_t> bytes, uint64_t offset) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return WriteErrno("pwrite", errno);
    }
    if (n == 0) return IoError("pwrite: wrote nothing");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status SuspendFileIo::Sync(int fd) {
  if (::fsync(fd) != 0) return WriteErrno("fsync", errno);
  return Status::Ok();
}

SuspendFileIo& DefaultSuspendFileIo() {
  static SuspendFileIo io;
  return io;
}

SuspendFileWriter::~SuspendFileWriter() {
  Abort();
  if (hash_) XXH3_freeState(static_cast<XXH3_state_t*>(hash_));
}

void SuspendFileWriter::Abort() {
  if (fd_.valid()) {
    fd_.Reset();
    ::unlink(partial_.c_str());
  }
}

Status SuspendFileWriter::Open(const std::string& path) {
  if (path.empty()) return InvalidArgument("suspend file: empty path");
  Abort();
  path_ = path;
  partial_ = path + ".partial";
  const int fd = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("open " + partial_, errno);
  fd_.Reset(fd);
  if (!hash_) hash_ = XXH3_createState();
  if (!hash_) return ResourceExhausted("suspend file: XXH3_createState");
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(hash_));
  payload_bytes_ = 0;
  return Status::Ok();
}

Status SuspendFileWriter::Append(std::span<const uint8_t> bytes) {
  if (!fd_.valid()) return InvalidArgument("suspend file: not open");
  if (bytes.empty()) return Status::Ok();
  if (Status s = io_->PWrite(fd_.get(), bytes, sizeof(SuspendFileHeader) + payload_bytes_); !s.ok()) {
    Abort();
    return s.WithContext("writing " + partial_);
  }
  XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_), bytes.data(), bytes.size());
  payload_bytes_ += bytes.size();
  return Status::Ok();
}

Status SuspendFileWriter::Commit() {
  if (!fd_.valid()) return InvalidArgument("suspend file: not open");
  SuspendFileHeader h{};
  h.magic = kSuspendFileMagic;
  h.version = kSuspendFileVersion;
  h.header_bytes = sizeof h;
  h.payload_bytes = payload_bytes_;
  h.payload_xxh3 = XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_));
  h.header_xxh3 = HeaderChecksum(h);
  Status s = io_->PWrite(fd_.get(), std::span(reinterpret_cast<const uint8_t*>(&h), sizeof h), 0);
  if (s.ok()) s = io_->Sync(fd_.get());
  if (s.ok() && ::rename(partial_.c_str(), path_.c_str()) != 0) s = ErrnoStatus("rename to " + path_, errno);
  if (!s.ok()) {
    Abort();
    return s.WithContext("committing " + path_);
  }
  fd_.Reset();
  // The rename is durable once the directory is; a failure here leaves a complete file behind.
  const int dir = ::open(DirOf(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoStatus("open directory of " + path_, errno);
  UniqueFd dir_fd(dir);
  return io_->Sync(dir_fd.get()).WithContext("syncing the directory of " + path_);
}

StatusOr<std::vector<uint8_t>> ReadSuspendFile(const std::string& path) {
  if (path.empty()) return InvalidArgument("suspend file: empty path");
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return ErrnoStatus("open " + path, errno);
  UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat " + path, errno);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto read_at = [&](void* dst, uint64_t bytes, uint64_t offset) -> Status {
    uint64_t done = 0;
    while (done < bytes) {
      const ssize_t n = ::pread(fd.get(), static_cast<char*>(dst) + done, bytes - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("pread " + path, errno);
      }
      if (n == 0) return Corruption(path + ": suspend file truncated while reading");
      done += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  };
  SuspendFileHeader h{};
  if (size < sizeof h) {
    if (size >= sizeof h.magic) {
      uint64_t magic = 0;
      KVT_RETURN_IF_ERROR(read_at(&magic, sizeof magic, 0));
      if (magic != kSuspendFileMagic) return InvalidArgument(path + ": not a sequence suspend file (bad magic)");
    }
    return Corruption(path + ": suspend file truncated (" + std::to_string(size) + " bytes, shorter than its header)");
  }
  KVT_RETURN_IF_ERROR(read_at(&h, sizeof h, 0));
  if (h.magic != kSuspendFileMagic) return InvalidArgument(path + ": not a sequence suspend file (bad magic)");
  if (h.header_xxh3 != HeaderChecksum(h)) return Corruption(path + ": suspend file header checksum mismatch");
  if (h.version != kSuspendFileVersion || h.header_bytes != sizeof h) {
    return Unsupported(path + ": suspend file format version " + std::to_string(h.version) + ", this library reads " +
                       std::to_string(kSuspendFileVersion));
  }
  if (size - sizeof h != h.payload_bytes) {
    return Corruption(path + ": suspend file holds " + std::to_string(size - sizeof h) + " payload bytes, its header says " +
                      std::to_string(h.payload_bytes) + (size - sizeof h < h.payload_bytes ? " (truncated)" : ""));
  }
  std::vector<uint8_t> payload(h.payload_bytes);
  KVT_RETURN_IF_ERROR(read_at(payload.data(), payload.size(), sizeof h));
  if (XXH3_64bits(payload.data(), payload.size()) != h.payload_xxh3) {
    return Corruption(path + ": suspend file payload checksum mismatch");
  }
  return payload;
}

}  // namespace kvt::sequence
