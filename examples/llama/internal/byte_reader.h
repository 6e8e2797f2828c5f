// ByteReader — bounds-checked little-endian reads over a byte buffer the caller owns.
//
// Every read checks the remaining length first and returns a CORRUPTION status naming `what`
// and the offset, so loaders reject truncated or malformed files instead of reading past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "common/status_or.h"

namespace kvt::llama::internal {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - offset_; }
  const uint8_t* data() const { return data_; }

  // A scalar (int32, uint64, float, ...) in little-endian order (the hosts we run on are little-endian).
  template <typename T>
  StatusOr<T> Read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    KVT_RETURN_IF_ERROR(Need(sizeof(T), what));
    T value;
    std::memcpy(&value, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  // `n` raw bytes as a string.
  StatusOr<std::string> ReadString(uint64_t n, const char* what) {
    KVT_RETURN_IF_ERROR(Need(n, what));
    std::string s(reinterpret_cast<const char*>(data_ + offset_), n);
    offset_ += n;
    return s;
  }

  // `count` float32 values appended to `out`.
  Status ReadFloats(uint64_t count, const char* what, float* out) {
    if (count > size_ / sizeof(float)) return Truncated(what, count * sizeof(float));
    KVT_RETURN_IF_ERROR(Need(count * sizeof(float), what));
    std::memcpy(out, data_ + offset_, count * sizeof(float));
    offset_ += count * sizeof(float);
    return Status::Ok();
  }

  Status Skip(uint64_t n, const char* what) {
    KVT_RETURN_IF_ERROR(Need(n, what));
    offset_ += n;
    return Status::Ok();
  }

  Status Seek(uint64_t offset, const char* what) {
    if (offset > size_) return Truncated(what, offset - offset_);
    offset_ = offset;
    return Status::Ok();
  }

  Status Need(uint64_t n, const char* what) const {
    if (n > remaining()) return Truncated(what, n);
    return Status::Ok();
  }

 private:
  Status Truncated(const char* what, uint64_t n) const {
    return Corruption(source_ + ": truncated reading " + what + " at offset " +
                      std::to_string(offset_) + ": need " + std::to_string(n) + " bytes, " +
                      std::to_string(remaining()) + " left of " + std::to_string(size_));
  }

  const uint8_t* data_;
  uint64_t size_;
  uint64_t offset_ = 0;
  std::string source_;
};

}  // namespace kvt::llama::internal
