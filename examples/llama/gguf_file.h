// GgufFile — a parsed GGUF v2/v3 file: its metadata, its tensor infos and access to F32/F16 data.
//
// Only what a Llama checkpoint needs is supported: scalar and one-level array metadata, and
// tensors of type F32 (0) or F16 (1). Every count, length, offset and size is checked against the
// file length before it is used, so a truncated or malformed file gives CORRUPTION (or
// UNSUPPORTED for a valid file using features outside this subset), never a crash.
// The GgufFile owns the file bytes; it is immutable after Parse.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status_or.h"

namespace kvt::llama {

enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1 };

struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  GgufValueType element_type = GgufValueType::kUint8;  // arrays only
  double number = 0.0;                                 // every numeric/bool scalar
  std::string string;
  std::vector<double> numbers;       // numeric arrays
  std::vector<std::string> strings;  // string arrays
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the fastest-varying (the row length)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;         // relative to the data section
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  static StatusOr<GgufFile> Parse(std::vector<uint8_t> bytes, std::string source);
  static StatusOr<GgufFile> Load(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& source() const { return source_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Typed metadata access; NOT_FOUND when absent, INVALID_ARGUMENT when of another kind.
  StatusOr<int64_t> GetInt(const std::string& key) const;
  StatusOr<double> GetFloat(const std::string& key) const;
  StatusOr<std::string> GetString(const std::string& key) const;
  StatusOr<std::vector<std::string>> GetStringArray(const std::string& key) const;
  StatusOr<std::vector<double>> GetNumberArray(const std::string& key) const;

  const GgufTensorInfo* FindTensor(const std::string& name) const;

  // Converts tensor `name` to float32 into `out` [elements], after checking its dims equal
  // `dims` (GGUF order). NOT_FOUND / INVALID_ARGUMENT otherwise.
  Status ReadTensor(const std::string& name, const std::vector<uint64_t>& dims, float* out) const;

 private:
  GgufFile() = default;
  std::vector<uint8_t> bytes_;
  std::string source_;
  uint32_t version_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace kvt::llama
