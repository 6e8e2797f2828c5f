#include "common/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/check.h"

namespace kvt {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kTimeout: return "TIMEOUT";
    case StatusCode::kIoError: return "IO_ERROR";
    case StatusCode::kCorruption: return "CORRUPTION";
    case StatusCode::kProtocolMismatch: return "PROTOCOL_MISMATCH";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kDisconnected: return "DISCONNECTED";
    case StatusCode::kUnsupported: return "UNSUPPORTED";
    case StatusCode::kBusy: return "BUSY";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

Status ErrnoStatus(std::string_view call, int err) {
  char buf[128];
  // GNU strerror_r returns the message pointer (which may or may not be buf).
  const char* reason = strerror_r(err, buf, sizeof buf);
  std::string m(call);
  m += ": ";
  m += reason;
  switch (err) {
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EDQUOT: return ResourceExhausted(std::move(m));
    case EACCES:
    case EPERM: return PermissionDenied(std::move(m));
    case ENOENT: return NotFound(std::move(m));
    case EINVAL: return InvalidArgument(std::move(m));
    case ETIMEDOUT: return Timeout(std::move(m));
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN: return Disconnected(std::move(m));
    case EAGAIN: return Busy(std::move(m));
    default: return IoError(std::move(m));
  }
}

namespace internal {
void CheckFailed(const char* file, int line, const char* expr, std::string_view msg) {
  std::fprintf(stderr, "KVT_CHECK failed at %s:%d: %s %.*s\n", file, line, expr,
               static_cast<int>(msg.size()), msg.data());
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

}  // namespace kvt
