#include "examples/llama/gguf_file.h"

#include <cstring>

#include "examples/llama/internal/byte_reader.h"
#include "examples/llama/internal/file_bytes.h"
#include "examples/llama/internal/half.h"

namespace kvt::llama {
namespace {

using internal::ByteReader;

constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;
constexpr uint32_t kMaxDims = 4;

StatusOr<std::string> ReadGgufString(ByteReader& r, const char* what) {
  KVT_ASSIGN_OR_RETURN(uint64_t n, r.Read<uint64_t>(what));
  if (n > kMaxStringBytes) {
    return Corruption(std::string(what) + ": string length " + std::to_string(n) + " too large");
  }
  return r.ReadString(n, what);
}

int ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64: return 8;
    default: return 0;
  }
}

StatusOr<double> ReadScalar(ByteReader& r, GgufValueType t, const char* what) {
  switch (t) {
    case GgufValueType::kUint8: { KVT_ASSIGN_OR_RETURN(uint8_t v, r.Read<uint8_t>(what)); return double(v); }
    case GgufValueType::kInt8: { KVT_ASSIGN_OR_RETURN(int8_t v, r.Read<int8_t>(what)); return double(v); }
    case GgufValueType::kBool: { KVT_ASSIGN_OR_RETURN(uint8_t v, r.Read<uint8_t>(what)); return double(v != 0); }
    case GgufValueType::kUint16: { KVT_ASSIGN_OR_RETURN(uint16_t v, r.Read<uint16_t>(what)); return double(v); }
    case GgufValueType::kInt16: { KVT_ASSIGN_OR_RETURN(int16_t v, r.Read<int16_t>(what)); return double(v); }
    case GgufValueType::kUint32: { KVT_ASSIGN_OR_RETURN(uint32_t v, r.Read<uint32_t>(what)); return double(v); }
    case GgufValueType::kInt32: { KVT_ASSIGN_OR_RETURN(int32_t v, r.Read<int32_t>(what)); return double(v); }
    case GgufValueType::kFloat32: { KVT_ASSIGN_OR_RETURN(float v, r.Read<float>(what)); return double(v); }
    case GgufValueType::kUint64: { KVT_ASSIGN_OR_RETURN(uint64_t v, r.Read<uint64_t>(what)); return double(v); }
    case GgufValueType::kInt64: { KVT_ASSIGN_OR_RETURN(int64_t v, r.Read<int64_t>(what)); return double(v); }
    case GgufValueType::kFloat64: { KVT_ASSIGN_OR_RETURN(double v, r.Read<double>(what)); return v; }
    default: return Corruption(std::string(what) + ": not a scalar type");
  }
}

Status ReadValue(ByteReader& r, const std::string& key, GgufValue& v) {
  const std::string what = "value of '" + key + "'";
  KVT_ASSIGN_OR_RETURN(uint32_t type, r.Read<uint32_t>(what.c_str()));
  if (type > static_cast<uint32_t>(GgufValueType::kFloat64)) {
    return Corruption("metadata '" + key + "' has unknown type " + std::to_string(type));
  }
  v.type = static_cast<GgufValueType>(type);
  if (v.type == GgufValueType::kString) {
    KVT_ASSIGN_OR_RETURN(v.string, ReadGgufString(r, what.c_str()));
    return Status::Ok();
  }
  if (v.type != GgufValueType::kArray) {
    KVT_ASSIGN_OR_RETURN(v.number, ReadScalar(r, v.type, what.c_str()));
    return Status::Ok();
  }
  KVT_ASSIGN_OR_RETURN(uint32_t etype, r.Read<uint32_t>(what.c_str()));
  KVT_ASSIGN_OR_RETURN(uint64_t count, r.Read<uint64_t>(what.c_str()));
  if (etype > static_cast<uint32_t>(GgufValueType::kFloat64)) {
    return Corruption("metadata '" + key + "' is an array of unknown type " + std::to_string(etype));
  }
  v.element_type = static_cast<GgufValueType>(etype);
  if (v.element_type == GgufValueType::kArray) {
    return Unsupported("metadata '" + key + "' is an array of arrays");
  }
  // Each element takes at least its scalar size (8 for a string's length): bound the count by
  // what is left before reserving anything.
  const uint64_t min_elem = v.element_type == GgufValueType::kString ? 8 : ScalarSize(v.element_type);
  if (count > r.remaining() / min_elem) {
    return Corruption("truncated or corrupt: metadata '" + key + "' declares " +
                      std::to_string(count) + " elements, more than the file holds");
  }
  if (v.element_type == GgufValueType::kString) {
    v.strings.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      KVT_ASSIGN_OR_RETURN(std::string s, ReadGgufString(r, what.c_str()));
      v.strings.push_back(std::move(s));
    }
  } else {
    v.numbers.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      KVT_ASSIGN_OR_RETURN(double d, ReadScalar(r, v.element_type, what.c_str()));
      v.numbers.push_back(d);
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<GgufFile> GgufFile::Parse(std::vector<uint8_t> bytes, std::string source) {
  GgufFile f;
  f.bytes_ = std::move(bytes);
  f.source_ = std::move(source);
  ByteReader r(f.bytes_.data(), f.bytes_.size(), f.source_);
  KVT_ASSIGN_OR_RETURN(uint32_t magic, r.Read<uint32_t>("magic"));
  if (magic != 0x46554747u) return Corruption(f.source_ + ": not a GGUF file (bad magic)");
  KVT_ASSIGN_OR_RETURN(f.version_, r.Read<uint32_t>("version"));
  if (f.version_ != 2 && f.version_ != 3) {
    return Unsupported(f.source_ + ": GGUF version " + std::to_string(f.version_) + " (2 or 3 supported)");
  }
  KVT_ASSIGN_OR_RETURN(uint64_t n_tensors, r.Read<uint64_t>("tensor count"));
  KVT_ASSIGN_OR_RETURN(uint64_t n_kv, r.Read<uint64_t>("metadata count"));
  // A key-value pair takes at least 8+4+1 bytes, a tensor info at least 8+4+4+8.
  if (n_kv > r.remaining() / 13 || n_tensors > r.remaining() / 24) {
    return Corruption(f.source_ + ": truncated or corrupt: header declares " + std::to_string(n_kv) +
                      " metadata and " +
                      std::to_string(n_tensors) + " tensors, more than the file holds");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    KVT_ASSIGN_OR_RETURN(std::string key, ReadGgufString(r, "metadata key"));
    GgufValue v;
    if (Status s = ReadValue(r, key, v); !s.ok()) return s.WithContext(f.source_);
    f.metadata_[key] = std::move(v);
  }
  uint64_t alignment = 32;
  if (auto a = f.GetInt("general.alignment"); a.ok()) {
    if (*a <= 0 || *a > (1 << 20) || (*a & (*a - 1)) != 0) {
      return Corruption(f.source_ + ": general.alignment " + std::to_string(*a) + " is not a power of two");
    }
    alignment = static_cast<uint64_t>(*a);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    KVT_ASSIGN_OR_RETURN(t.name, ReadGgufString(r, "tensor name"));
    KVT_ASSIGN_OR_RETURN(uint32_t n_dims, r.Read<uint32_t>("tensor n_dims"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Corruption(f.source_ + ": tensor '" + t.name + "' has " + std::to_string(n_dims) + " dims");
    }
    t.elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      KVT_ASSIGN_OR_RETURN(uint64_t dim, r.Read<uint64_t>("tensor dim"));
      if (dim == 0 || dim > (uint64_t{1} << 40) || t.elements > (uint64_t{1} << 40) / dim) {
        return Corruption(f.source_ + ": tensor '" + t.name + "' has an invalid dimension " + std::to_string(dim));
      }
      t.dims.push_back(dim);
      t.elements *= dim;
    }
    KVT_ASSIGN_OR_RETURN(uint32_t type, r.Read<uint32_t>("tensor type"));
    KVT_ASSIGN_OR_RETURN(t.offset, r.Read<uint64_t>("tensor offset"));
    if (type != 0 && type != 1) {
      return Unsupported(f.source_ + ": tensor '" + t.name + "' has ggml type " + std::to_string(type) +
                         " (only F32 and F16 are supported)");
    }
    t.type = static_cast<GgmlType>(type);
    t.bytes = t.elements * (t.type == GgmlType::kF32 ? 4 : 2);
    if (t.offset % alignment != 0) {
      return Corruption(f.source_ + ": tensor '" + t.name + "' offset " + std::to_string(t.offset) +
                        " is not aligned to " + std::to_string(alignment));
    }
    f.tensors_.push_back(std::move(t));
  }
  f.data_offset_ = (r.offset() + alignment - 1) / alignment * alignment;
  if (f.data_offset_ > f.bytes_.size()) {
    return Corruption(f.source_ + ": truncated before the tensor data section");
  }
  const uint64_t data_bytes = f.bytes_.size() - f.data_offset_;
  for (const GgufTensorInfo& t : f.tensors_) {
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
      return Corruption(f.source_ + ": truncated: tensor '" + t.name + "' needs bytes [" +
                        std::to_string(t.offset) + ", " + std::to_string(t.offset + t.bytes) +
                        ") of the data section, which has " + std::to_string(data_bytes));
    }
  }
  return f;
}

StatusOr<GgufFile> GgufFile::Load(const std::string& path) {
  KVT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, internal::ReadFileBytes(path));
  return Parse(std::move(bytes), path);
}

StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return NotFound(source_ + ": no metadata '" + key + "'");
  const GgufValue& v = it->second;
  if (v.type == GgufValueType::kString || v.type == GgufValueType::kArray ||
      v.type == GgufValueType::kFloat32 || v.type == GgufValueType::kFloat64) {
    return InvalidArgument(source_ + ": metadata '" + key + "' is not an integer");
  }
  return static_cast<int64_t>(v.number);
}

StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return NotFound(source_ + ": no metadata '" + key + "'");
  const GgufValue& v = it->second;
  if (v.type == GgufValueType::kString || v.type == GgufValueType::kArray) {
    return InvalidArgument(source_ + ": metadata '" + key + "' is not a number");
  }
  return v.number;
}

StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return NotFound(source_ + ": no metadata '" + key + "'");
  if (it->second.type != GgufValueType::kString) {
    return InvalidArgument(source_ + ": metadata '" + key + "' is not a string");
  }
  return it->second.string;
}

StatusOr<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return NotFound(source_ + ": no metadata '" + key + "'");
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::kArray || v.element_type != GgufValueType::kString) {
    return InvalidArgument(source_ + ": metadata '" + key + "' is not an array of strings");
  }
  return v.strings;
}

StatusOr<std::vector<double>> GgufFile::GetNumberArray(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return NotFound(source_ + ": no metadata '" + key + "'");
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::kArray || v.element_type == GgufValueType::kString) {
    return InvalidArgument(source_ + ": metadata '" + key + "' is not an array of numbers");
  }
  return v.numbers;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status GgufFile::ReadTensor(const std::string& name, const std::vector<uint64_t>& dims,
                            float* out) const {
  const GgufTensorInfo* t = FindTensor(name);
  if (t == nullptr) return NotFound(source_ + ": no tensor '" + name + "'");
  if (t->dims != dims) {
    auto fmt = [](const std::vector<uint64_t>& d) {
      std::string s = "[";
      for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
      return s + "]";
    };
    return InvalidArgument(source_ + ": tensor '" + name + "' has dims " + fmt(t->dims) +
                           ", expected " + fmt(dims));
  }
  const uint8_t* src = bytes_.data() + data_offset_ + t->offset;  // in bounds: checked in Parse
  if (t->type == GgmlType::kF32) {
    std::memcpy(out, src, t->bytes);
  } else {
    for (uint64_t i = 0; i < t->elements; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      out[i] = internal::HalfToFloat(h);
    }
  }
  return Status::Ok();
}

}  // namespace kvt::llama
