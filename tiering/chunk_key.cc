#include "tiering/chunk_key.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstdio>
#include <cstring>

namespace kvt::tiering {

std::string ChunkKey::ToHex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

uint32_t DtypeBytes(Dtype dtype) {
  switch (dtype) {
    case Dtype::kF16:
    case Dtype::kBf16: return 2;
    case Dtype::kF32: return 4;
  }
  return 0;
}

namespace {

ChunkKey FromHash(XXH128_hash_t h) { return ChunkKey{h.low64, h.high64}; }

void UpdateU32(XXH3_state_t* s, uint32_t v) { XXH3_128bits_update(s, &v, sizeof v); }

}  // namespace

Fingerprint ComputeFingerprint(const Layout& layout, uint32_t format_version, std::string_view tenant) {
  XXH3_state_t* s = XXH3_createState();
  XXH3_128bits_reset(s);
  static constexpr char kDomain[] = "kvt-namespace-v1";
  XXH3_128bits_update(s, kDomain, sizeof kDomain);
  // Length-prefixed strings, so ("ab","c") and ("a","bc") differ.
  UpdateU32(s, static_cast<uint32_t>(layout.model_id.size()));
  XXH3_128bits_update(s, layout.model_id.data(), layout.model_id.size());
  UpdateU32(s, layout.num_layers);
  UpdateU32(s, layout.num_kv_heads);
  UpdateU32(s, layout.head_dim);
  UpdateU32(s, static_cast<uint32_t>(layout.dtype));
  UpdateU32(s, layout.tokens_per_chunk);
  UpdateU32(s, format_version);
  UpdateU32(s, static_cast<uint32_t>(tenant.size()));
  XXH3_128bits_update(s, tenant.data(), tenant.size());
  Fingerprint f = FromHash(XXH3_128bits_digest(s));
  XXH3_freeState(s);
  return f;
}

ChunkKey ChainKey(const ChunkKey& previous, const Fingerprint& fingerprint,
                  std::span<const uint32_t> chunk_tokens) {
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, &previous, sizeof previous);
  XXH3_128bits_update(&state, &fingerprint, sizeof fingerprint);
  XXH3_128bits_update(&state, chunk_tokens.data(), chunk_tokens.size_bytes());
  return FromHash(XXH3_128bits_digest(&state));
}

}  // namespace kvt::tiering
