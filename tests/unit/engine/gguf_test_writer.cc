#include "tests/unit/engine/gguf_test_writer.h"

#include <cstring>
#include <string>

namespace kvt::llama::testing {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void PutString(std::vector<uint8_t>& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void PutScalar(std::vector<uint8_t>& out, GgufValueType t, double v) {
  switch (t) {
    case GgufValueType::kUint8: Put<uint8_t>(out, static_cast<uint8_t>(v)); break;
    case GgufValueType::kInt8: Put<int8_t>(out, static_cast<int8_t>(v)); break;
    case GgufValueType::kBool: Put<uint8_t>(out, v != 0); break;
    case GgufValueType::kUint16: Put<uint16_t>(out, static_cast<uint16_t>(v)); break;
    case GgufValueType::kInt16: Put<int16_t>(out, static_cast<int16_t>(v)); break;
    case GgufValueType::kUint32: Put<uint32_t>(out, static_cast<uint32_t>(v)); break;
    case GgufValueType::kInt32: Put<int32_t>(out, static_cast<int32_t>(v)); break;
    case GgufValueType::kFloat32: Put<float>(out, static_cast<float>(v)); break;
    case GgufValueType::kUint64: Put<uint64_t>(out, static_cast<uint64_t>(v)); break;
    case GgufValueType::kInt64: Put<int64_t>(out, static_cast<int64_t>(v)); break;
    case GgufValueType::kFloat64: Put<double>(out, v); break;
    default: break;
  }
}

}  // namespace

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFFu;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // may carry into the exponent: correct
  return static_cast<uint16_t>(sign | h);
}

std::vector<uint8_t> WriteGguf(const GgufFile& f, bool as_f16) {
  std::vector<uint8_t> out;
  Put<uint32_t>(out, 0x46554747u);
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, f.tensors().size());
  Put<uint64_t>(out, f.metadata().size());
  for (const auto& [key, v] : f.metadata()) {
    PutString(out, key);
    Put<uint32_t>(out, static_cast<uint32_t>(v.type));
    if (v.type == GgufValueType::kString) {
      PutString(out, v.string);
    } else if (v.type == GgufValueType::kArray) {
      Put<uint32_t>(out, static_cast<uint32_t>(v.element_type));
      if (v.element_type == GgufValueType::kString) {
        Put<uint64_t>(out, v.strings.size());
        for (const std::string& s : v.strings) PutString(out, s);
      } else {
        Put<uint64_t>(out, v.numbers.size());
        for (double d : v.numbers) PutScalar(out, v.element_type, d);
      }
    } else {
      PutScalar(out, v.type, v.number);
    }
  }
  std::vector<std::vector<uint8_t>> blobs;
  uint64_t offset = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    std::vector<float> values(t.elements);
    (void)f.ReadTensor(t.name, t.dims, values.data());
    std::vector<uint8_t> blob;
    for (float x : values) {
      if (as_f16) {
        Put<uint16_t>(blob, FloatToHalf(x));
      } else {
        Put<float>(blob, x);
      }
    }
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) Put<uint64_t>(out, d);
    Put<uint32_t>(out, as_f16 ? 1 : 0);
    Put<uint64_t>(out, offset);
    offset += (blob.size() + 31) / 32 * 32;
    blobs.push_back(std::move(blob));
  }
  while (out.size() % 32) out.push_back(0);
  for (auto& blob : blobs) {
    out.insert(out.end(), blob.begin(), blob.end());
    while (out.size() % 32) out.push_back(0);
  }
  return out;
}

}  // namespace kvt::llama::testing
