// Suspend files — a suspended sequence's image on local storage (NVMe), so that its host memory is
// released while it waits (issue 7: "a suspended sequence moves entirely to host or NVMe").
//
// Layout, little-endian:
//   [SuspendFileHeader, 64 B][payload: the bytes Sequence::Suspend() would return]
// The header carries the payload length and its XXH3-64, and its own XXH3-64 (with that field
// zero), so a truncated, overwritten or foreign file is detected before any of it is parsed.
//
// Writing is crash-safe: the image goes to "<path>.partial", is fsync'd, renamed over <path>, and
// the directory is fsync'd; a failed write removes the partial file and leaves <path> as it was
// (only a failure of that last directory fsync reports an error with the new file in place).
// Plain pwrite(2) + fsync(2): one sequential stream per suspend gains nothing from a queue depth,
// and the NVMe tier's IoQueue (host/nvme) would pull the daemon's tiering library into libkvtier.
//
// Errors: ENOSPC, EDQUOT and EFBIG are RESOURCE_EXHAUSTED; a file that is not a suspend file
// (wrong magic) INVALID_ARGUMENT; a truncated or checksum-failing one CORRUPTION (the project's
// data-loss code); a newer format version UNSUPPORTED; other errno failures as ErrnoStatus says.
// Thread-safe (no shared state); every call blocks until its I/O is done.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status_or.h"
#include "common/unique_fd.h"

namespace kvt::sequence {

inline constexpr uint64_t kSuspendFileMagic = 0x0031'4653'5154'564bULL;  // "KVTQSF1\0"
inline constexpr uint32_t kSuspendFileVersion = 1;

struct SuspendFileHeader {
  uint64_t magic;          // kSuspendFileMagic
  uint32_t version;        // kSuspendFileVersion
  uint32_t header_bytes;   // sizeof(SuspendFileHeader)
  uint64_t payload_bytes;
  uint64_t payload_xxh3;   // XXH3-64 of the payload
  uint64_t reserved[3];    // 0
  uint64_t header_xxh3;    // XXH3-64 of this struct with this field zero
};
static_assert(sizeof(SuspendFileHeader) == 64);

// How suspend files reach the disk: the default is pwrite(2) / fsync(2); tests wrap it to inject
// failures (ENOSPC after N bytes). Implementations are thread-safe.
class SuspendFileIo {
 public:
  virtual ~SuspendFileIo() = default;
  // Writes all of `bytes` at `offset` (retrying short writes and EINTR) or fails.
  virtual Status PWrite(int fd, std::span<const uint8_t> bytes, uint64_t offset);
  virtual Status Sync(int fd);
};
SuspendFileIo& DefaultSuspendFileIo();

// Streams one image into a suspend file: Open, Append the payload in pieces, Commit. Destroying
// an uncommitted writer removes the partial file. One thread at a time.
class SuspendFileWriter {
 public:
  explicit SuspendFileWriter(SuspendFileIo* io = nullptr) : io_(io ? io : &DefaultSuspendFileIo()) {}
  ~SuspendFileWriter();
  SuspendFileWriter(const SuspendFileWriter&) = delete;
  SuspendFileWriter& operator=(const SuspendFileWriter&) = delete;

  Status Open(const std::string& path);
  Status Append(std::span<const uint8_t> bytes);
  // Header, fsync, rename over the target, fsync of the directory.
  Status Commit();
  uint64_t payload_bytes() const { return payload_bytes_; }

 private:
  void Abort();

  SuspendFileIo* io_;
  std::string path_, partial_;
  UniqueFd fd_;
  void* hash_ = nullptr;  // XXH3_state_t*
  uint64_t payload_bytes_ = 0;
};

// Reads and verifies a suspend file; returns its payload.
StatusOr<std::vector<uint8_t>> ReadSuspendFile(const std::string& path);

}  // namespace kvt::sequence
