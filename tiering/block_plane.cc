#include "tiering/block_plane.h"

#include <algorithm>

#include "protocol/version.h"

namespace kvt::tiering {

StatusOr<Namespace> MakeNamespace(Layout layout, std::string tenant) {
  if (layout.model_id.empty() || layout.model_id.size() > 255) {
    return InvalidArgument("model_id must be 1-255 bytes");
  }
  if (layout.num_layers == 0 || layout.num_layers > kMaxLayers) {
    return InvalidArgument("num_layers must be 1-" + std::to_string(kMaxLayers));
  }
  if (layout.num_kv_heads == 0 || layout.num_kv_heads > kMaxKvHeads) {
    return InvalidArgument("num_kv_heads must be 1-" + std::to_string(kMaxKvHeads));
  }
  if (layout.head_dim == 0 || layout.head_dim > kMaxHeadDim) {
    return InvalidArgument("head_dim must be 1-" + std::to_string(kMaxHeadDim));
  }
  if (layout.tokens_per_chunk == 0 || layout.tokens_per_chunk > kMaxTokensPerChunk) {
    return InvalidArgument("tokens_per_chunk must be 1-" + std::to_string(kMaxTokensPerChunk));
  }
  if (DtypeBytes(layout.dtype) == 0) return InvalidArgument("unknown dtype");
  // Each factor is bounded above, so this product cannot overflow 64 bits.
  uint64_t chunk_bytes = layout.ChunkBytes();
  if (chunk_bytes > kMaxChunkBytes) {
    return InvalidArgument("chunk of " + std::to_string(chunk_bytes) + " bytes exceeds the 1 GiB limit");
  }
  Namespace ns;
  ns.fingerprint = ComputeFingerprint(layout, protocol::kChunkFormatVersion, tenant);
  ns.layout = std::move(layout);
  ns.tenant = std::move(tenant);
  ns.chunk_bytes = chunk_bytes;
  return ns;
}

std::vector<ChunkKey> BlockPlane::Keys(const Namespace& ns, std::span<const uint32_t> tokens) {
  const uint64_t per = ns.layout.tokens_per_chunk;
  const uint64_t chunks = tokens.size() / per;
  std::vector<ChunkKey> keys;
  keys.reserve(chunks);
  ChunkKey prev;
  for (uint64_t i = 0; i < chunks; ++i) {
    prev = ChainKey(prev, ns.fingerprint, tokens.subspan(i * per, per));
    keys.push_back(prev);
  }
  return keys;
}

PrefixResult BlockPlane::Store(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t first_chunk,
                               const char* kv, uint64_t kv_bytes) {
  const uint64_t per = ns.layout.tokens_per_chunk;
  const uint64_t chunks = tokens.size() / per;
  if (first_chunk > chunks) {
    return {InvalidArgument("first chunk " + std::to_string(first_chunk) + " is past the " +
                            std::to_string(chunks) + " whole chunks of the prefix"),
            0};
  }
  if (kv_bytes != (chunks - first_chunk) * ns.chunk_bytes) {
    return {InvalidArgument("kv_bytes is " + std::to_string(kv_bytes) + " but " +
                            std::to_string(chunks - first_chunk) + " whole chunks of " +
                            std::to_string(ns.chunk_bytes) + " bytes need " +
                            std::to_string((chunks - first_chunk) * ns.chunk_bytes)),
            0};
  }
  PrefixResult r;
  ChunkKey prev;
  for (uint64_t i = 0; i < chunks; ++i) {
    prev = ChainKey(prev, ns.fingerprint, tokens.subspan(i * per, per));
    if (i < first_chunk) continue;
    auto put = store_->Put(prev, ns.fingerprint, kv + (i - first_chunk) * ns.chunk_bytes, ns.chunk_bytes);
    if (!put.ok()) {
      r.status = put.status().WithContext("chunk " + std::to_string(i));
      return r;
    }
    if (*put == BlockStore::PutResult::kStored) {
      ++r.value;
      if (prefix_tier_) {
        // Write-behind from the host slot itself: the aliasing pointer keeps the entry alive.
        if (ChunkIndex::EntryPtr e = store_->index().Find(prev)) {
          std::shared_ptr<const char> data(e, e->slot->data());
          prefix_tier_->Offer(prev, ns.fingerprint, i, std::move(data), e->bytes);
        }
      }
    }
  }
  return r;
}

PrefixResult BlockPlane::Lookup(const Namespace& ns, std::span<const uint32_t> tokens) {
  const uint64_t per = ns.layout.tokens_per_chunk;
  const uint64_t chunks = tokens.size() / per;
  ChunkKey prev;
  uint64_t i = 0;
  for (; i < chunks; ++i) {
    prev = ChainKey(prev, ns.fingerprint, tokens.subspan(i * per, per));
    if (!store_->Contains(prev) && !(gpu_tier_ && gpu_tier_->Contains(prev))) break;
  }
  if (prefix_tier_ && i < chunks) {
    std::vector<ChunkKey> rest = TailKeys(ns, tokens, prev, i, chunks);  // prev: chunk i's key
    i += prefix_tier_->CountPresent(ns.fingerprint, rest);
  }
  return {Status::Ok(), i * per};
}

PrefixResult BlockPlane::Retrieve(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t first_chunk,
                                  char* out, uint64_t out_bytes) {
  const uint64_t per = ns.layout.tokens_per_chunk;
  const uint64_t chunks = tokens.size() / per;
  if (first_chunk > chunks) return {InvalidArgument("first chunk is past the end of the prefix"), 0};
  const uint64_t end = std::min<uint64_t>(chunks, first_chunk + out_bytes / ns.chunk_bytes);
  ChunkKey prev;
  uint64_t i = 0;
  for (; i < end; ++i) {
    prev = ChainKey(prev, ns.fingerprint, tokens.subspan(i * per, per));
    if (i < first_chunk) continue;
    char* dst = out + (i - first_chunk) * ns.chunk_bytes;
    Status s = store_->Get(prev, ns.fingerprint, dst, ns.chunk_bytes);
    if (!s.ok() && gpu_tier_) s = gpu_tier_->CopyOut(prev, ns.fingerprint, dst, ns.chunk_bytes);
    if (!s.ok()) break;  // a miss ends the prefix; never an error to the engine
  }
  if (prefix_tier_ && i >= first_chunk && i < end) {
    // Chunk i missed locally: ask the shared tier for [i, end) in one batch, then keep what it
    // returned in the host tier (a failed promotion is no failure of the read).
    std::vector<ChunkKey> rest = TailKeys(ns, tokens, prev, i, end);  // prev: chunk i's key
    char* dst = out + (i - first_chunk) * ns.chunk_bytes;
    uint64_t got = prefix_tier_->ReadPrefix(ns.fingerprint, rest, dst, ns.chunk_bytes);
    for (uint64_t k = 0; k < got; ++k) {
      store_->Put(rest[k], ns.fingerprint, dst + k * ns.chunk_bytes, ns.chunk_bytes).status().IgnoreError();
    }
    i += got;
  }
  return {Status::Ok(), std::max(i, first_chunk) * per};
}

PrefixResult BlockPlane::Remove(const Namespace& ns, std::span<const uint32_t> tokens) {
  PrefixResult r;
  std::vector<ChunkKey> keys = Keys(ns, tokens);
  for (const ChunkKey& key : keys) {
    const bool on_gpu = gpu_tier_ && gpu_tier_->Remove(key);
    r.value += (store_->Remove(key) || on_gpu) ? 1 : 0;
  }
  if (prefix_tier_) prefix_tier_->Remove(keys);
  return r;
}

PrefixResult BlockPlane::Pin(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease) {
  PrefixResult r;
  for (const ChunkKey& key : Keys(ns, tokens)) {
    if (!store_->Pin(key)) break;
    lease->insert(key);
    r.value += ns.layout.tokens_per_chunk;
  }
  return r;
}

PrefixResult BlockPlane::Unpin(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease) {
  PrefixResult r;
  for (const ChunkKey& key : Keys(ns, tokens)) {
    auto it = lease->find(key);
    if (it == lease->end()) continue;  // not pinned by this client
    lease->erase(it);
    if (store_->Unpin(key)) r.value += ns.layout.tokens_per_chunk;
  }
  return r;
}

}  // namespace kvt::tiering

namespace kvt::tiering {

std::vector<ChunkKey> BlockPlane::TailKeys(const Namespace& ns, std::span<const uint32_t> tokens,
                                           ChunkKey key_from, uint64_t from, uint64_t to) {
  const uint64_t per = ns.layout.tokens_per_chunk;
  std::vector<ChunkKey> keys;
  keys.reserve(to - from);
  keys.push_back(key_from);
  ChunkKey previous = key_from;
  for (uint64_t i = from + 1; i < to; ++i) {
    previous = ChainKey(previous, ns.fingerprint, tokens.subspan(i * per, per));
    keys.push_back(previous);
  }
  return keys;
}

PrefixResult BlockPlane::GpuAcquire(const Namespace& ns, std::span<const uint32_t> tokens, uint64_t* offsets,
                                    uint64_t max_chunks, PinLease* lease) {
  if (!gpu_tier_) return {Unsupported("the daemon runs without a GPU tier (--gpu-pool-bytes 0, or no GPU)"), 0};
  PrefixResult r;
  std::vector<ChunkKey> keys = Keys(ns, tokens);
  if (keys.size() > max_chunks) keys.resize(max_chunks);
  for (uint64_t i = 0; i < keys.size(); ++i) {
    StatusOr<uint64_t> offset = gpu_tier_->Acquire(keys[i], ns.fingerprint, ns.chunk_bytes);
    if (!offset.ok()) {
      // A miss ends the prefix; anything else also says why.
      if (offset.status().code() != StatusCode::kNotFound) {
        r.status = offset.status().WithContext("chunk " + std::to_string(i));
      }
      break;
    }
    offsets[i] = *offset;
    lease->insert(keys[i]);
    r.value += ns.layout.tokens_per_chunk;
  }
  return r;
}

PrefixResult BlockPlane::GpuRelease(const Namespace& ns, std::span<const uint32_t> tokens, PinLease* lease) {
  if (!gpu_tier_) return {Unsupported("the daemon runs without a GPU tier (--gpu-pool-bytes 0, or no GPU)"), 0};
  PrefixResult r;
  for (const ChunkKey& key : Keys(ns, tokens)) {
    auto it = lease->find(key);
    if (it == lease->end()) continue;  // not pinned on the GPU by this client
    lease->erase(it);
    if (gpu_tier_->Release(key)) r.value += ns.layout.tokens_per_chunk;
  }
  return r;
}

void BlockPlane::ReleaseGpuLease(PinLease* lease) {
  if (gpu_tier_) {
    for (const ChunkKey& key : *lease) gpu_tier_->Release(key);
  }
  lease->clear();
}

void BlockPlane::ReleaseLease(PinLease* lease) {
  for (const ChunkKey& key : *lease) store_->Unpin(key);  // a removed chunk simply is not found
  lease->clear();
}

}  // namespace kvt::tiering
