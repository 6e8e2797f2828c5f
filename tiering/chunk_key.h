// Chunk keys and namespace fingerprints.
//
//   fingerprint = XXH3-128(model id, layers, kv heads, head dim, dtype, tokens per chunk,
//                          chunk format version, tenant)
//   key[0]      = XXH3-128(zero key  || fingerprint || tokens[0, c))
//   key[i]      = XXH3-128(key[i-1]  || fingerprint || tokens[i*c, (i+1)*c))
//
// A key therefore names a whole prefix, not one chunk's tokens: the same tokens after a different
// prefix, in a different layout, or for a different tenant give a different key. Keys are always
// computed by the daemon from the tokens a client sends; clients never name keys directly.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace kvt::tiering {

struct ChunkKey {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const ChunkKey&, const ChunkKey&) = default;
  std::string ToHex() const;
};

using Fingerprint = ChunkKey;

enum class Dtype : uint32_t { kF16 = 1, kBf16 = 2, kF32 = 3 };
uint32_t DtypeBytes(Dtype dtype);  // 0 for an unknown value

struct Layout {
  std::string model_id;
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  Dtype dtype = Dtype::kF16;
  uint32_t tokens_per_chunk = 0;

  // [layer][K|V][token][kv_head][head_dim] of one chunk.
  uint64_t ChunkBytes() const {
    return uint64_t{num_layers} * 2 * tokens_per_chunk * num_kv_heads * head_dim * DtypeBytes(dtype);
  }
};

Fingerprint ComputeFingerprint(const Layout& layout, uint32_t format_version, std::string_view tenant);

// Key of the chunk holding `chunk_tokens` after the prefix whose last chunk key is `previous`
// (a default ChunkKey for the first chunk).
ChunkKey ChainKey(const ChunkKey& previous, const Fingerprint& fingerprint,
                  std::span<const uint32_t> chunk_tokens);

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};

}  // namespace kvt::tiering
