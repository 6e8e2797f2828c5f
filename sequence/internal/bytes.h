// ByteWriter / ByteReader — the little serialization the sequence's suspend/resume needs: integers
// and vectors of trivially copyable elements, length-prefixed, bounds-checked on read (a truncated
// or corrupt image is CORRUPTION, never an overrun).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "common/status.h"

namespace kvt::sequence::internal {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>* out) : out_(out) {}
  template <typename T>
  void Put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_->insert(out_->end(), p, p + sizeof(T));
  }
  template <typename T>
  void PutVector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Put<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out_->insert(out_->end(), p, p + v.size() * sizeof(T));
  }
  void PutString(const std::string& s) { PutVector(std::vector<char>(s.begin(), s.end())); }

 private:
  std::vector<uint8_t>* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  Status Get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (in_.size() - pos_ < sizeof(T) || in_.data() == nullptr) return Corruption("sequence image truncated");
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  template <typename T>
  Status GetVector(std::vector<T>* v) {
    uint64_t n = 0;
    KVT_RETURN_IF_ERROR(Get(&n));
    if (n > (in_.size() - pos_) / sizeof(T)) return Corruption("sequence image: vector larger than the image");
    v->resize(n);
    if (n > 0) std::memcpy(v->data(), in_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return Status::Ok();
  }
  Status GetString(std::string* s) {
    std::vector<char> c;
    KVT_RETURN_IF_ERROR(GetVector(&c));
    s->assign(c.begin(), c.end());
    return Status::Ok();
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace kvt::sequence::internal
