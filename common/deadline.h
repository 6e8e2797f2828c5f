// Deadlines for every blocking call: a point on the steady clock, or "never".
#pragma once

#include <chrono>
#include <cstdint>

namespace kvt {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  static Deadline Never() { return Deadline(Clock::time_point::max()); }
  static Deadline After(std::chrono::nanoseconds d) { return Deadline(Clock::now() + d); }
  // timeout_ns < 0 means never; 0 means "already expired" (poll).
  static Deadline FromTimeoutNs(int64_t timeout_ns) {
    return timeout_ns < 0 ? Never() : After(std::chrono::nanoseconds(timeout_ns));
  }

  bool expired() const { return Clock::now() >= at_; }
  bool is_never() const { return at_ == Clock::time_point::max(); }
  Clock::time_point at() const { return at_; }
  // Remaining time, clamped at zero; a large value for Never().
  std::chrono::nanoseconds remaining() const {
    if (is_never()) return std::chrono::hours(24 * 365);
    auto now = Clock::now();
    return now >= at_ ? std::chrono::nanoseconds(0) : at_ - now;
  }

 private:
  explicit Deadline(Clock::time_point at) : at_(at) {}
  Clock::time_point at_;
};

}  // namespace kvt
