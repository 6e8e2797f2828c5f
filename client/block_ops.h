// Block-plane operations on a Connection: namespaces, store / lookup / retrieve / remove / pin,
// their asynchronous and batch forms, and the zero-copy buffer calls.
//
// Zero copy: a KV buffer (or token array) inside the shared heap is passed by offset. Anything
// else is staged through the heap: copied in before a store, copied out after a retrieve. A
// synchronous copy-path request is streamed in pieces of whole chunks (about 2 MiB), up to 32 MiB
// of them in flight (at most half the heap), so the client's copy of one piece overlaps the
// daemon's copy of another; a request larger than the heap goes through the same stream.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "client/connection.h"
#include "protocol/ops.h"

namespace kvt::client {

struct NamespaceInfo {
  uint32_t handle = 0;
  uint64_t chunk_bytes = 0;
  uint32_t tokens_per_chunk = 0;
};

struct TokenSpan {
  const uint32_t* tokens = nullptr;
  uint64_t num_tokens = 0;
};

StatusOr<NamespaceInfo> OpenNamespace(Connection& c, const std::string& model_id, uint32_t num_layers,
                                      uint32_t num_kv_heads, uint32_t head_dim, uint32_t dtype,
                                      uint32_t tokens_per_chunk);
Status CloseNamespace(Connection& c, const NamespaceInfo& ns);

// value: chunks stored (even on a partial failure).
OpResult Store(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens, const void* kv,
               uint64_t kv_bytes);
// value: tokens retrieved.
OpResult Retrieve(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens, void* out,
                  uint64_t out_bytes);
// Lookup, remove, pin, unpin: tokens only.
OpResult Simple(Connection& c, const NamespaceInfo& ns, protocol::Opcode op, const uint32_t* tokens,
                uint64_t num_tokens);

// An asynchronous op: its staging is freed, and a staged retrieve copied out, when it completes.
class PendingBlockOp {
 public:
  PendingBlockOp(Connection* c, Connection::OpId id) : c_(c), id_(id) {}
  ~PendingBlockOp();  // releases the op (it may still finish in the background)
  OpResult Poll();
  OpResult Wait(Deadline deadline);

 private:
  Connection* c_;
  Connection::OpId id_;
  bool finished_ = false;
  OpResult result_;
};

// One request (single piece: staging must fit in the heap) submitted without waiting.
StatusOr<std::unique_ptr<PendingBlockOp>> SubmitBlockOp(Connection& c, const NamespaceInfo& ns, protocol::Opcode op,
                                                        const uint32_t* tokens, uint64_t num_tokens, void* data,
                                                        uint64_t bytes);

Status LookupBatch(Connection& c, const NamespaceInfo& ns, std::span<const TokenSpan> spans, uint64_t* matched);
Status StoreBatch(Connection& c, const NamespaceInfo& ns, std::span<const TokenSpan> spans, const void* const* kvs,
                  const uint64_t* kv_bytes, uint64_t* stored_chunks);

StatusOr<uint64_t> AllocateBuffer(Connection& c, uint64_t bytes);
void FreeBuffer(Connection& c, void* ptr);

Status FetchStats(Connection& c, protocol::DaemonStats* out);
// Up to `capacity` listings into out; *known receives how many the daemon has.
Status ListNamespaces(Connection& c, protocol::NamespaceListing* out, uint64_t capacity, uint64_t* written,
                      uint64_t* known);

}  // namespace kvt::client
