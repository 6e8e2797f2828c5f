// KvtierPrefixStore — the engine's PrefixKvStore over kv-tierd's block plane (libkvtier).
//
// One client connection and one namespace per store. The namespace's layout is the model's
// (layers, KV heads, head_dim), dtype F32 (the engine's own precision, so a reused prefix is
// bit-identical to a recomputed one), `tokens_per_chunk` tokens per chunk, and a `model_id` that
// identifies the checkpoint by content (ModelKvIdentity: config + weights hash). kv-tierd chains
// each chunk's key with the previous one, so a chunk is only found after the very same prefix.
//
// Layout mapping. The engine's PrefixKv is [layers][2][tokens][kv_heads][head_dim]; the block
// plane wants [chunk][layer][K|V][token][kv_head][head_dim]. Each (chunk, layer, K|V) slab is a
// contiguous run of tokens_per_chunk * kv_heads * head_dim floats on both sides, so the mapping is
// one copy per slab, done straight into (Store) or out of (Retrieve) a buffer in the client's
// shared heap (kvt_buffer_alloc): the daemon reads and writes that buffer in place, and no other
// copy happens in this process. The token ids travel in the same buffer.
//
// Failures: every call has the client's deadline (`timeout_ns`, default 2 s: a miss is cheaper
// than a stall); any error is returned as a Status and the engine treats it as a miss. Only whole
// chunks are stored; a retrieval that returns fewer tokens than asked (a chunk evicted between
// Lookup and Retrieve) is NOT_FOUND.
// Threading: not thread-safe (one staging buffer); use one store per engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "examples/llama/model_config.h"
#include "examples/llama/prefix_kv_store.h"
#include "kvt/kvt.hpp"

namespace kvt::llama {

struct KvtierStoreOptions {
  std::string socket_path;       // empty: $KVT_SOCKET, else the daemon's default
  std::string tenant;            // empty: "default"
  std::string model_id;          // required: ModelKvIdentity(weights) or an explicit id
  int tokens_per_chunk = 16;     // 16 suits stories260K (512-token context: 32 chunks)
  int64_t timeout_ns = 2'000'000'000;
  uint64_t heap_bytes = 0;       // client heap; 0: the library default (64 MiB)
};

class KvtierPrefixStore final : public PrefixKvStore {
 public:
  // Connects and opens the namespace. UNAVAILABLE-like errors (no daemon) come back as a Status.
  static StatusOr<std::unique_ptr<KvtierPrefixStore>> Open(const KvtierStoreOptions& options,
                                                           const ModelConfig& config);
  ~KvtierPrefixStore() override;
  KvtierPrefixStore(const KvtierPrefixStore&) = delete;
  KvtierPrefixStore& operator=(const KvtierPrefixStore&) = delete;

  StatusOr<int> Lookup(std::span<const int32_t> tokens) override;
  StatusOr<PrefixKv> Retrieve(std::span<const int32_t> tokens, int n) override;
  Status Store(std::span<const int32_t> tokens, const PrefixKv& kv) override;

  int tokens_per_chunk() const { return tpc_; }
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  const std::string& model_id() const { return model_id_; }
  // Counters since Open: chunks copied back by Retrieve, chunks newly stored by Store, and
  // requests that failed (each one a miss for the engine).
  int64_t retrieved_chunks() const { return retrieved_chunks_; }
  int64_t stored_chunks() const { return stored_chunks_; }
  int64_t failures() const { return failures_; }
  // Whether the last Store/Retrieve used the shared heap in place (false: library-staged copy).
  bool last_zero_copy() const { return last_zero_copy_; }

  kvt::Client& client() { return client_; }

 private:
  KvtierPrefixStore() = default;
  // A staging area of at least `bytes` (shared heap when possible, else process memory).
  char* Staging(uint64_t bytes);
  Status Fail(Status s);

  kvt::Client client_;
  kvt::Namespace ns_;
  std::string model_id_;
  int layers_ = 0, kv_heads_ = 0, head_dim_ = 0, tpc_ = 0;
  uint64_t chunk_bytes_ = 0;
  void* shared_ = nullptr;  // kvt_buffer_alloc'ed
  uint64_t shared_bytes_ = 0;
  std::vector<char> fallback_;
  bool last_zero_copy_ = false;
  int64_t retrieved_chunks_ = 0, stored_chunks_ = 0, failures_ = 0;
};

}  // namespace kvt::llama
