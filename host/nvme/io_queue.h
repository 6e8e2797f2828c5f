// IoQueue — how the NVMe tier reads and writes its files: one small interface, two strategies
// (io_uring, a thread pool doing pread/pwrite), chosen by a factory that probes what the kernel
// and the file system allow, plus a fault-injecting wrapper for tests.
//
// Run() takes a batch of independent requests, issues them concurrently (up to the queue depth)
// and returns when every one has completed, each with its own result. Nothing is retried and
// nothing throws: a failure is a negative errno in IoRequest::result, a short transfer a smaller
// count. Thread-safe: any number of threads may call Run() at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status_or.h"

namespace kvt::nvme {

// O_DIRECT alignment of offsets, lengths and buffer addresses.
inline constexpr uint64_t kIoAlignment = 4096;

struct IoRequest {
  enum class Op : uint8_t { kRead, kWrite };
  Op op = Op::kRead;
  int fd = -1;
  void* buf = nullptr;  // kIoAlignment-aligned when the files are opened O_DIRECT
  uint32_t len = 0;     // a multiple of kIoAlignment when the files are opened O_DIRECT
  uint64_t offset = 0;
  int64_t result = 0;   // set by Run: bytes transferred, or -errno
};

// The request's outcome as a Status: OK only for a full transfer.
Status IoResultStatus(const IoRequest& request);

struct BufferRegion {
  char* base = nullptr;
  uint64_t bytes = 0;
};

struct IoQueueCapabilities {
  std::string backend;              // "io_uring" | "threadpool" (a wrapper may add a suffix)
  bool direct = false;              // the data directory accepts O_DIRECT: open files with it
  bool registered_buffers = false;  // RegisterBuffers succeeded: I/O on them skips page pinning
  uint32_t depth = 0;               // requests in flight per Run
  std::string note;                 // why this backend and mode were chosen, for the log
};

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  virtual void Run(std::span<IoRequest> requests) = 0;
  // fdatasync.
  virtual Status Sync(int fd) = 0;
  // Registers long-lived buffer regions for zero-copy I/O (io_uring fixed buffers; the NVMe tier
  // registers its staging pool and the host arena). All or none: returns false when the backend
  // has no such thing or the kernel refuses any region (the queue still works, unregistered).
  // Call once, before the first Run or while no Run is in flight; the regions must outlive the queue.
  virtual bool RegisterBuffers(std::span<const BufferRegion> regions) = 0;
  bool RegisterBuffer(void* base, uint64_t bytes) {
    BufferRegion r{static_cast<char*>(base), bytes};
    return RegisterBuffers(std::span<const BufferRegion>(&r, 1));
  }
  virtual const IoQueueCapabilities& capabilities() const = 0;
};

enum class IoBackend { kAuto, kIoUring, kThreadPool };
StatusOr<IoBackend> ParseIoBackend(std::string_view name);  // auto | io_uring | threadpool

struct IoQueueOptions {
  IoBackend backend = IoBackend::kAuto;
  std::string dir;      // probed for O_DIRECT
  uint32_t depth = 32;
  bool allow_direct = true;  // false: never O_DIRECT (tests of the buffered path)
};

// Probes io_uring (a ring can be set up) and O_DIRECT (a probe file in options.dir takes an
// aligned direct write). kAuto falls back to the thread pool when io_uring is refused and says so
// in capabilities().note; an explicit kIoUring that the kernel refuses is an error.
StatusOr<std::unique_ptr<IoQueue>> MakeIoQueue(const IoQueueOptions& options);

std::unique_ptr<IoQueue> MakeThreadPoolIoQueue(uint32_t depth, bool direct, std::string note);
StatusOr<std::unique_ptr<IoQueue>> MakeUringIoQueue(uint32_t depth, bool direct, std::string note);

}  // namespace kvt::nvme
