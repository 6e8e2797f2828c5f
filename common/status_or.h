// kvt::StatusOr<T> — a value or the Status explaining why there is none.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>

#include "common/check.h"
#include "common/status.h"

namespace kvt {

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    KVT_CHECK(!status_.ok(), "StatusOr built from an OK status without a value");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    KVT_CHECK(ok(), "StatusOr::value() on error: " + status_.ToString());
    return *value_;
  }
  const T& value() const& {
    KVT_CHECK(ok(), "StatusOr::value() on error: " + status_.ToString());
    return *value_;
  }
  T&& value() && {
    KVT_CHECK(ok(), "StatusOr::value() on error: " + status_.ToString());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kvt

// Evaluates `expr` (a StatusOr); on error returns its status, else moves the value into `lhs`
// (which may be a declaration: KVT_ASSIGN_OR_RETURN(auto fd, OpenFile(path));).
#define KVT_ASSIGN_OR_RETURN(lhs, expr) \
  KVT_ASSIGN_OR_RETURN_IMPL_(KVT_STATUS_CONCAT_(kvt_status_or_, __LINE__), lhs, expr)
#define KVT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
