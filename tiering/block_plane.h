// BlockPlane — the engine-facing block operations on token prefixes.
//
// It chains chunk keys from a namespace and its tokens (tiering/chunk_key.h) and drives the
// BlockStore chunk by chunk. Only whole chunks take part: tokens after the last multiple of
// tokens_per_chunk are ignored. KV buffers use the layout [chunk][layer][K|V][token][kv_head][head_dim].
//
// Thread-safe (the BlockStore is); callers validate buffer bounds before calling.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/status_or.h"
#include "tiering/block_store.h"
#include "tiering/chunk_key.h"
#include "tiering/gpu_tier.h"
#include "tiering/prefix_tier.h"

namespace kvt::tiering {

// Hard limits on what a client may declare, so a malicious layout cannot overflow a size.
inline constexpr uint32_t kMaxLayers = 1024;
inline constexpr uint32_t kMaxKvHeads = 1024;
inline constexpr uint32_t kMaxHeadDim = 4096;
inline constexpr uint32_t kMaxTokensPerChunk = 65536;
inline constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 30;

struct Namespace {
  Layout layout;
  std::string tenant;
  Fingerprint fingerprint;
  uint64_t chunk_bytes = 0;
};

// Validates the layout and computes the fingerprint.
StatusOr<Namespace> MakeNamespace(Layout layout, std::string tenant);

// A result that can be partial: `value` is meaningful even when `status` is an error
// (e.g. a store that ran out of space after some chunks).
// The chunks one client has pinned (a chunk pinned twice appears twice). Released with the client.
using PinLease = std::unordered_multiset<ChunkKey, ChunkKeyHash>;

struct PrefixResult {
  Status status;
  uint64_t value = 0;
};

class BlockPlane {
 public:
  explicit BlockPlane(BlockStore* store) : store_(store) {}

  // Stores chunks [first_chunk, whole_chunks) of the prefix; kv holds exactly those chunks.
  // value: chunks newly stored.
  PrefixResult Store(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t first_chunk,
                     const char* kv, uint64_t kv_bytes);
  // value: matched tokens.
  PrefixResult Lookup(const Namespace& ns, std::span<const uint32_t> tokens);
  // Copies the present chunks from first_chunk on, stopping at the first miss or when out
  // (out_bytes / chunk_bytes chunks) is full. value: the prefix length in tokens that is now
  // covered, counted from token 0: (first_chunk + chunks copied) * tokens_per_chunk.
  PrefixResult Retrieve(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t first_chunk,
                        char* out, uint64_t out_bytes);
  // value: chunks removed.
  PrefixResult Remove(const Namespace& ns, std::span<const uint32_t> tokens);
  // value: tokens pinned (the longest present prefix); the keys join *lease.
  PrefixResult Pin(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease);
  // value: tokens unpinned; only chunks this lease pinned are unpinned (and leave it).
  PrefixResult Unpin(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease);
  // Releases every pin of a lease (a client that disconnects or dies).
  void ReleaseLease(PinLease* lease);

  // The GPU tier (absent: UNSUPPORTED). Makes the chunks of the longest present prefix, up to
  // `max_chunks`, GPU-resident and pins each there once for `lease`; offsets[i] receives chunk
  // i's byte offset in the GPU pool. value: tokens pinned. A chunk no tier holds ends the prefix
  // (not an error); a full pool ends it with RESOURCE_EXHAUSTED after the chunks that fit.
  PrefixResult GpuAcquire(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t* offsets,
                          uint64_t max_chunks, PinLease* lease);
  // value: tokens whose GPU pin this lease held and gave back.
  PrefixResult GpuRelease(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease);
  // Releases every GPU pin of a lease (a client that disconnects or dies).
  void ReleaseGpuLease(PinLease* lease);

  // The chained keys of the whole chunks of `tokens`.
  static std::vector<ChunkKey> Keys(const Namespace& ns, std::span<const uint32_t> tokens);

  // The shared tier below the local ones (the remote store): newly stored chunks are offered to
  // it for write-behind, and what Lookup/Retrieve miss locally is asked of it in one batch.
  // Set before serving; must outlive the plane's use.
  void set_prefix_tier(PrefixTier* tier) { prefix_tier_ = tier; }
  // The GPU tier above the host tier, when the daemon has one: Lookup counts and Retrieve copies
  // chunks only it still holds, Remove removes there too. Set before serving; must outlive the plane's use.
  void set_gpu_tier(GpuTier* tier) { gpu_tier_ = tier; }
  GpuTier* gpu_tier() const { return gpu_tier_; }

 private:
  // Keys of chunks [from, to), given chunk from's key.
  static std::vector<ChunkKey> TailKeys(const Namespace& ns, std::span<const uint32_t> tokens, ChunkKey key_from,
                                        uint64_t from, uint64_t to);

  BlockStore* store_;
  PrefixTier* prefix_tier_ = nullptr;
  GpuTier* gpu_tier_ = nullptr;
};

}  // namespace kvt::tiering
