// KVT_CHECK — for broken internal invariants only. It aborts loudly; recoverable failures
// (I/O, bad requests, CUDA launch errors) are Status values instead.
#pragma once

#include <string_view>

namespace kvt::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, std::string_view msg);
}  // namespace kvt::internal

#define KVT_CHECK(cond, ...)                                                         \
  do {                                                                               \
    if (!(cond)) [[unlikely]]                                                        \
      ::kvt::internal::CheckFailed(__FILE__, __LINE__, #cond, std::string_view{__VA_ARGS__}); \
  } while (0)

#ifdef NDEBUG
#define KVT_DCHECK(cond, ...) \
  do {                        \
  } while (0)
#else
#define KVT_DCHECK(cond, ...) KVT_CHECK(cond, __VA_ARGS__)
#endif
