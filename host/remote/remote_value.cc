#include "host/remote/remote_value.h"

#include "tiering/record_header.h"

namespace kvt::remote {

using tiering::kRecordHeaderBytes;

std::string RedisKey(std::string_view prefix, const tiering::ChunkKey& key) {
  std::string k(prefix);
  k += "c:";
  k += key.ToHex();
  return k;
}

std::string EncodeValueHeader(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint,
                              const char* payload, uint64_t bytes, uint64_t now_ms) {
  tiering::RecordMeta m;
  m.key = key;
  m.fingerprint = fingerprint;
  m.sequence = now_ms;
  m.payload_bytes = bytes;
  m.payload_xxh3 = tiering::RecordPayloadChecksum(payload, bytes);
  std::string h(kRecordHeaderBytes, '\0');
  tiering::EncodeRecordHeader(m, h.data());
  return h;
}

ValueCheck VerifyValue(std::string_view value, const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint,
                       uint64_t expected_bytes) {
  if (value.size() < kRecordHeaderBytes) return ValueCheck::kCorrupt;
  return VerifyValueParts(value.substr(0, kRecordHeaderBytes), value.substr(kRecordHeaderBytes), key, fingerprint,
                          expected_bytes);
}

ValueCheck VerifyValueParts(std::string_view header, std::string_view payload, const tiering::ChunkKey& key,
                            const tiering::Fingerprint& fingerprint, uint64_t expected_bytes) {
  tiering::RecordMeta m;
  switch (tiering::DecodeRecordHeader(header.data(), header.size(), &m)) {
    case tiering::RecordCheck::kCorrupt: return ValueCheck::kCorrupt;
    case tiering::RecordCheck::kStale: return ValueCheck::kStale;
    case tiering::RecordCheck::kOk: break;
  }
  if (!(m.key == key) || !(m.fingerprint == fingerprint)) return ValueCheck::kForeign;
  if (m.payload_bytes != expected_bytes) return ValueCheck::kForeign;  // another layout under this key
  if (payload.size() != m.payload_bytes) return ValueCheck::kCorrupt;  // truncated, extended
  if (tiering::RecordPayloadChecksum(payload.data(), m.payload_bytes) != m.payload_xxh3) {
    return ValueCheck::kCorrupt;
  }
  return ValueCheck::kOk;
}

}  // namespace kvt::remote
