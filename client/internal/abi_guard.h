// The C ABI's error boundary, shared by c_api.cc, sequence_api.cc and gpu_api.cc: a Status becomes
// a kvt_status_t plus the thread's last-error message (kvt_last_error_message), and no exception
// ever crosses into the caller.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "common/status.h"
#include "include/kvt/kvt.h"

namespace kvt::client {

// Defined in c_api.cc: records s as the calling thread's last error and returns its code.
kvt_status_t AbiFail(const Status& s);

inline kvt_status_t AbiFail(kvt_status_t code, const char* message) {
  return AbiFail(Status(static_cast<StatusCode>(code), message));
}

inline kvt_status_t AbiDone(const Status& s) { return s.ok() ? KVT_STATUS_OK : AbiFail(s); }

// Runs f (returning kvt_status_t); an exception becomes RESOURCE_EXHAUSTED (bad_alloc) or INTERNAL.
template <typename F>
kvt_status_t AbiGuard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return AbiFail(ResourceExhausted("out of memory in libkvtier"));
  } catch (const std::exception& e) {
    return AbiFail(Internal(std::string("libkvtier: ") + e.what()));
  } catch (...) {
    return AbiFail(Internal("libkvtier: unknown exception"));
  }
}

}  // namespace kvt::client
