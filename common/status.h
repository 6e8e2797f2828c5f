// kvt::Status — the error type of every internal API.
//
// A Status is a code plus a human-readable message. An OK status carries no message and never
// allocates. Statuses are values: functions return them, callers inspect or propagate them with
// KVT_RETURN_IF_ERROR. Exceptions never cross a module boundary; code that calls a throwing
// library (yaml-cpp, Asio) catches at the call site and converts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace kvt {

// Mirrors kvt_status_t in include/kvt/kvt.h value for value (checked by a static_assert in the client).
enum class StatusCode : uint32_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kResourceExhausted = 4,
  kTimeout = 5,
  kIoError = 6,
  kCorruption = 7,
  kProtocolMismatch = 8,
  kPermissionDenied = 9,
  kDisconnected = 10,
  kUnsupported = 11,
  kBusy = 12,
  kInternal = 13,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "NOT_FOUND: chunk 3 missing" (or "OK").
  std::string ToString() const;

  // Prepends context: "opening segment 7: IO_ERROR: pread: Input/output error".
  Status WithContext(std::string_view context) const;

  // Explicitly discards a status where ignoring it is the intended behaviour.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status ProtocolMismatch(std::string m) { return {StatusCode::kProtocolMismatch, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status Disconnected(std::string m) { return {StatusCode::kDisconnected, std::move(m)}; }
inline Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// "<call>: <strerror(err)>" with a code chosen from errno (ENOSPC -> RESOURCE_EXHAUSTED,
// EACCES/EPERM -> PERMISSION_DENIED, ENOENT -> NOT_FOUND, EIO and the rest -> IO_ERROR).
Status ErrnoStatus(std::string_view call, int err);

}  // namespace kvt

#define KVT_STATUS_CONCAT_INNER_(a, b) a##b
#define KVT_STATUS_CONCAT_(a, b) KVT_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define KVT_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::kvt::Status kvt_status_ = (expr);            \
    if (!kvt_status_.ok()) return kvt_status_;     \
  } while (0)
