// HeapView — bounds-checked access to a client's shared heap.
//
// Every offset and length a client sends goes through here before the daemon touches memory:
// overflow-safe range checks, alignment of token arrays. The client may change the bytes at
// any time; the daemon only ever reads or writes inside the range it checked.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status_or.h"

namespace kvt::daemon {

class HeapView {
 public:
  HeapView(char* base, uint64_t bytes) : base_(base), bytes_(bytes) {}

  StatusOr<char*> Bytes(uint64_t offset, uint64_t length, const char* what) const {
    if (offset > bytes_ || length > bytes_ - offset) {
      return InvalidArgument(std::string(what) + " [" + std::to_string(offset) + ", +" + std::to_string(length) +
                             ") lies outside the shared heap of " + std::to_string(bytes_) + " bytes");
    }
    return base_ + offset;
  }

  StatusOr<std::span<const uint32_t>> Tokens(uint64_t offset, uint64_t count) const {
    if (offset % alignof(uint32_t) != 0) return InvalidArgument("token array offset is not 4-byte aligned");
    if (count > bytes_ / sizeof(uint32_t)) return InvalidArgument("token count " + std::to_string(count) + " exceeds the heap");
    KVT_ASSIGN_OR_RETURN(char* p, Bytes(offset, count * sizeof(uint32_t), "token array"));
    return std::span<const uint32_t>(reinterpret_cast<const uint32_t*>(p), count);
  }

  uint64_t size() const { return bytes_; }

 private:
  char* base_;
  uint64_t bytes_;
};

}  // namespace kvt::daemon
