#include "host/nvme/io_queue.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/unique_fd.h"

namespace kvt::nvme {
namespace {

// Whether `dir` accepts an aligned O_DIRECT write; the reason when it does not.
bool ProbeDirect(const std::string& dir, std::string* why) {
  std::string path = dir + "/.kvt-direct-probe";
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    *why = "O_DIRECT open refused on " + dir + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    return false;
  }
  void* buf = std::aligned_alloc(kIoAlignment, kIoAlignment);
  std::memset(buf, 0, kIoAlignment);
  ssize_t n = ::pwrite(fd.get(), buf, kIoAlignment, 0);
  int err = errno;
  std::free(buf);
  ::unlink(path.c_str());
  if (n != static_cast<ssize_t>(kIoAlignment)) {
    *why = "O_DIRECT write refused on " + dir + ": " + std::strerror(n < 0 ? err : EIO);
    return false;
  }
  return true;
}

}  // namespace

Status IoResultStatus(const IoRequest& r) {
  const char* what = r.op == IoRequest::Op::kRead ? "read" : "write";
  if (r.result < 0) {
    return ErrnoStatus(std::string(what) + " of " + std::to_string(r.len) + " bytes at " +
                           std::to_string(r.offset),
                       static_cast<int>(-r.result));
  }
  if (static_cast<uint64_t>(r.result) != r.len) {
    return IoError(std::string("short ") + what + ": " + std::to_string(r.result) + " of " +
                   std::to_string(r.len) + " bytes at " + std::to_string(r.offset));
  }
  return Status::Ok();
}

StatusOr<IoBackend> ParseIoBackend(std::string_view name) {
  if (name == "auto") return IoBackend::kAuto;
  if (name == "io_uring") return IoBackend::kIoUring;
  if (name == "threadpool") return IoBackend::kThreadPool;
  return InvalidArgument("io backend must be auto, io_uring or threadpool, not '" + std::string(name) + "'");
}

StatusOr<std::unique_ptr<IoQueue>> MakeIoQueue(const IoQueueOptions& options) {
  std::string direct_note;
  bool direct = false;
  if (!options.allow_direct) {
    direct_note = "O_DIRECT not allowed by the configuration";
  } else {
    direct = ProbeDirect(options.dir, &direct_note);
    if (direct) direct_note = "O_DIRECT accepted";
  }
  uint32_t depth = options.depth == 0 ? 32 : options.depth;
  if (options.backend == IoBackend::kThreadPool) {
    return MakeThreadPoolIoQueue(depth, direct, "threadpool as configured; " + direct_note);
  }
  auto uring = MakeUringIoQueue(depth, direct, "io_uring; " + direct_note);
  if (uring.ok()) return uring;
  if (options.backend == IoBackend::kIoUring) return uring.status().WithContext("io backend io_uring");
  return MakeThreadPoolIoQueue(depth, direct,
                               "threadpool fallback: " + uring.status().message() + "; " + direct_note);
}

}  // namespace kvt::nvme
