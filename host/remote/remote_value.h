// A remote value: [RecordHeader 128 B (tiering/record_header.h)][payload], under the Redis key
// <prefix>c:<32 hex digits of the chunk key>. The chunk key already chains the namespace
// fingerprint, which includes the tenant, so tenants and namespaces never share a Redis key; the
// header repeats key and fingerprint so that a value copied or written under the wrong name is
// caught on read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tiering/chunk_key.h"

namespace kvt::remote {

std::string RedisKey(std::string_view prefix, const tiering::ChunkKey& key);

// The 128-byte header for a payload (its checksum computed here).
std::string EncodeValueHeader(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint,
                              const char* payload, uint64_t bytes, uint64_t now_ms);

enum class ValueCheck { kOk, kCorrupt, kStale, kForeign };

// Whether `value` is the chunk `key` of namespace `fingerprint`, `expected_bytes` long, intact.
ValueCheck VerifyValue(std::string_view value, const tiering::ChunkKey& key,
                       const tiering::Fingerprint& fingerprint, uint64_t expected_bytes);

// The same check for a value read in two parts (header, payload).
ValueCheck VerifyValueParts(std::string_view header, std::string_view payload, const tiering::ChunkKey& key,
                            const tiering::Fingerprint& fingerprint, uint64_t expected_bytes);

}  // namespace kvt::remote
