#include "client/block_ops.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>

namespace kvt::client {
namespace {

using protocol::Opcode;
using protocol::SubmissionEntry;

// A range of the heap a request uses: either the caller's own (zero copy) or staging we own.
struct HeapRange {
  uint64_t offset = 0;
  uint64_t bytes = 0;
  bool staged = false;
};

StatusOr<HeapRange> PlaceTokens(Connection& c, const uint32_t* tokens, uint64_t count, Deadline deadline) {
  HeapRange r;
  if (count == 0) return r;
  r.bytes = count * sizeof(uint32_t);
  if (c.InHeap(tokens, r.bytes, &r.offset) && r.offset % alignof(uint32_t) == 0) return r;
  KVT_ASSIGN_OR_RETURN(r.offset, c.AllocateStaging(r.bytes, deadline));
  r.staged = true;
  std::memcpy(c.heap() + r.offset, tokens, r.bytes);
  return r;
}

void Release(Connection& c, const HeapRange& r) {
  if (r.staged) c.FreeHeap(r.offset, r.bytes);
}

SubmissionEntry Entry(Opcode op, const NamespaceInfo& ns, const HeapRange& tokens, uint64_t num_tokens) {
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(op);
  e.ns = ns.handle;
  e.tokens_offset = tokens.offset;
  e.num_tokens = num_tokens;
  return e;
}

// The copy path streams a request in pieces of whole chunks, many in flight: the client copies
// piece k+1 (store) or piece k-1 (retrieve) while the daemon copies piece k, so the two copies
// overlap on two cores. Small pieces shorten the time only one side copies (the first piece of a
// store, the last of a retrieve); a deep queue lets either side run on while the other is
// descheduled, which on a shared machine happens every few milliseconds.
constexpr uint64_t kTargetPieceBytes = 2ull << 20;
constexpr uint64_t kMaxStreamBytes = 32ull << 20;  // staging in flight per request

// Chunks per copy-path piece: about kTargetPieceBytes, and at most a quarter of the heap, so two
// pieces and the token staging always fit.
uint64_t PieceChunks(const Connection& c, const NamespaceInfo& ns, uint64_t chunks) {
  uint64_t by_target = std::max<uint64_t>(1, kTargetPieceBytes / ns.chunk_bytes);
  uint64_t by_heap = std::max<uint64_t>(1, (c.heap_bytes() / 4) / ns.chunk_bytes);
  return std::min({by_target, by_heap, chunks});
}

// Pieces in flight at once: up to kMaxStreamBytes of them, at most half the heap (the rest stays
// for the application's buffers and other threads) and half the ring (other threads submit too).
size_t PiecesInFlight(const Connection& c, uint64_t piece_bytes) {
  uint64_t by_bytes = kMaxStreamBytes / piece_bytes;
  uint64_t by_heap = (c.heap_bytes() / 2) / piece_bytes;
  uint64_t by_ring = c.ring_entries() / 2;
  return static_cast<size_t>(std::max<uint64_t>(2, std::min({by_bytes, by_heap, by_ring})));
}

// How long a wait for a piece polls before sleeping: about the time the daemon takes to copy it
// (one nanosecond a byte, a pessimistic 1 GB/s), so a streaming client never pays for a wake-up
// between pieces; bounded, and the poll yields the CPU to anyone runnable.
std::chrono::microseconds PieceSpin(uint64_t piece_bytes) {
  constexpr std::chrono::microseconds kMaxPieceSpin{2000};
  return std::min(kMaxPieceSpin, std::chrono::microseconds(piece_bytes / 1000));
}

// Token staging shared by the pieces of a split request. Normally every piece has completed and
// it is freed at once; if one was abandoned after a timeout, a no-op request queued behind it
// frees the staging when it completes (the daemon serves a client's ring in order).
void ReleaseSharedTokens(Connection& c, const HeapRange& t, Deadline deadline, bool abandoned) {
  if (!t.staged) return;
  if (!abandoned) {
    Release(c, t);
    return;
  }
  auto id = c.Submit(SubmissionEntry{}, nullptr, [&c, t](OpResult&) { Release(c, t); }, deadline);
  if (id.ok()) c.Release(*id);
}

// Waits for an op; one that times out is released (it may still complete in the background, and
// its cleanup then frees its staging) and reported through *abandoned.
OpResult WaitOrAbandon(Connection& c, Connection::OpId id, Deadline deadline, bool* abandoned = nullptr,
                       std::chrono::microseconds spin = {}) {
  OpResult r = c.Wait(id, deadline, spin);
  if (r.status.code() == StatusCode::kTimeout) {
    c.Release(id);
    if (abandoned) *abandoned = true;
  }
  return r;
}

// Submits one request whose only staging is `staged` (freed when it completes) and waits for it.
OpResult CallReleasing(Connection& c, const SubmissionEntry& e, HeapRange staged, Deadline deadline) {
  auto id = c.Submit(e, nullptr, [&c, staged](OpResult&) { Release(c, staged); }, deadline);
  if (!id.ok()) return {id.status()};
  return WaitOrAbandon(c, *id, deadline);
}

struct InFlight {
  Connection::OpId id;
  uint64_t first_chunk;
  uint64_t end_chunk;
  HeapRange data;
};

}  // namespace

StatusOr<NamespaceInfo> OpenNamespace(Connection& c, const std::string& model_id, uint32_t num_layers,
                                      uint32_t num_kv_heads, uint32_t head_dim, uint32_t dtype,
                                      uint32_t tokens_per_chunk) {
  if (model_id.empty() || model_id.size() >= protocol::kModelIdMax) {
    return InvalidArgument("model_id must be 1-255 bytes");
  }
  Deadline deadline = c.DefaultDeadline();
  KVT_ASSIGN_OR_RETURN(uint64_t off, c.AllocateStaging(sizeof(protocol::NamespaceRequest), deadline));
  protocol::NamespaceRequest req{};
  std::memcpy(req.model_id, model_id.data(), model_id.size());
  req.num_layers = num_layers;
  req.num_kv_heads = num_kv_heads;
  req.head_dim = head_dim;
  req.dtype = dtype;
  req.tokens_per_chunk = tokens_per_chunk;
  std::memcpy(c.heap() + off, &req, sizeof req);
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kOpenNamespace);
  e.data_offset = off;
  e.data_bytes = sizeof req;
  OpResult r = CallReleasing(c, e, HeapRange{off, sizeof req, true}, deadline);
  if (!r.status.ok()) return r.status;
  NamespaceInfo ns;
  ns.handle = static_cast<uint32_t>(r.value);
  ns.chunk_bytes = r.value2;
  ns.tokens_per_chunk = tokens_per_chunk;
  return ns;
}

Status CloseNamespace(Connection& c, const NamespaceInfo& ns) {
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kCloseNamespace);
  e.ns = ns.handle;
  return c.Call(e, c.DefaultDeadline()).status;
}

OpResult Simple(Connection& c, const NamespaceInfo& ns, Opcode op, const uint32_t* tokens, uint64_t num_tokens) {
  Deadline deadline = c.DefaultDeadline();
  uint64_t used = num_tokens / ns.tokens_per_chunk * ns.tokens_per_chunk;
  auto placed = PlaceTokens(c, tokens, used, deadline);
  if (!placed.ok()) return {placed.status()};
  return CallReleasing(c, Entry(op, ns, *placed, used), *placed, deadline);
}

OpResult Store(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens, const void* kv,
               uint64_t kv_bytes) {
  const uint64_t chunks = num_tokens / ns.tokens_per_chunk;
  if (kv_bytes != chunks * ns.chunk_bytes) {
    return {InvalidArgument("kv_bytes is " + std::to_string(kv_bytes) + " but " + std::to_string(chunks) +
                            " whole chunks of " + std::to_string(ns.chunk_bytes) + " bytes need " +
                            std::to_string(chunks * ns.chunk_bytes))};
  }
  if (chunks == 0) return {};
  Deadline deadline = c.DefaultDeadline();
  auto placed = PlaceTokens(c, tokens, chunks * ns.tokens_per_chunk, deadline);
  if (!placed.ok()) return {placed.status()};
  HeapRange t = *placed;

  uint64_t kv_offset;
  if (c.InHeap(kv, kv_bytes, &kv_offset)) {  // zero copy: one request
    SubmissionEntry e = Entry(Opcode::kStore, ns, t, chunks * ns.tokens_per_chunk);
    e.data_offset = kv_offset;
    e.data_bytes = kv_bytes;
    return CallReleasing(c, e, t, deadline);
  }

  // Copy path: a stream of pieces of whole chunks.
  const uint64_t piece = PieceChunks(c, ns, chunks);
  const size_t max_inflight = PiecesInFlight(c, piece * ns.chunk_bytes);
  const std::chrono::microseconds spin = PieceSpin(piece * ns.chunk_bytes);
  const char* src = static_cast<const char*>(kv);
  std::deque<InFlight> inflight;
  bool abandoned = false;  // a piece timed out and may still read the shared token staging
  OpResult total;
  auto retire = [&]() {
    InFlight f = inflight.front();
    inflight.pop_front();
    OpResult r = WaitOrAbandon(c, f.id, deadline, &abandoned, spin);
    total.value += r.value;
    if (!r.status.ok() && total.status.ok()) total.status = r.status;
  };
  for (uint64_t c0 = 0; c0 < chunks && total.status.ok(); c0 += piece) {
    uint64_t c1 = std::min(chunks, c0 + piece);
    uint64_t bytes = (c1 - c0) * ns.chunk_bytes;
    auto off = c.AllocateStaging(bytes, deadline);
    if (!off.ok()) {
      total.status = off.status();
      break;
    }
    HeapRange d{*off, bytes, true};
    std::memcpy(c.heap() + d.offset, src + c0 * ns.chunk_bytes, bytes);
    SubmissionEntry e = Entry(Opcode::kStore, ns, t, c1 * ns.tokens_per_chunk);
    e.data_offset = d.offset;
    e.data_bytes = bytes;
    e.arg0 = c0;
    auto id = c.Submit(e, nullptr, [&c, d](OpResult&) { Release(c, d); }, deadline);
    if (!id.ok()) {
      total.status = id.status();
      break;
    }
    inflight.push_back({*id, c0, c1, d});
    if (inflight.size() == max_inflight) retire();
  }
  while (!inflight.empty()) retire();
  ReleaseSharedTokens(c, t, deadline, abandoned);
  return total;
}

OpResult Retrieve(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens, void* out,
                  uint64_t out_bytes) {
  const uint64_t chunks = std::min(num_tokens / ns.tokens_per_chunk, out_bytes / ns.chunk_bytes);
  if (chunks == 0) return {};
  Deadline deadline = c.DefaultDeadline();
  auto placed = PlaceTokens(c, tokens, chunks * ns.tokens_per_chunk, deadline);
  if (!placed.ok()) return {placed.status()};
  HeapRange t = *placed;
  char* dst = static_cast<char*>(out);

  uint64_t out_offset;
  if (c.InHeap(out, chunks * ns.chunk_bytes, &out_offset)) {  // zero copy
    SubmissionEntry e = Entry(Opcode::kRetrieve, ns, t, chunks * ns.tokens_per_chunk);
    e.data_offset = out_offset;
    e.data_bytes = chunks * ns.chunk_bytes;
    return CallReleasing(c, e, t, deadline);
  }

  const uint64_t piece = PieceChunks(c, ns, chunks);
  const size_t max_inflight = PiecesInFlight(c, piece * ns.chunk_bytes);
  const std::chrono::microseconds spin = PieceSpin(piece * ns.chunk_bytes);
  std::deque<InFlight> inflight;
  bool abandoned = false;  // a piece timed out and may still read the shared token staging
  OpResult total;
  bool prefix_ended = false;
  auto retire = [&]() {
    InFlight f = inflight.front();
    inflight.pop_front();
    OpResult r = WaitOrAbandon(c, f.id, deadline, &abandoned, spin);
    if (!r.status.ok()) {
      if (total.status.ok()) total.status = r.status;
      prefix_ended = true;
      return;
    }
    if (prefix_ended) return;  // a later piece after a miss: not part of the prefix
    // value: tokens covered from 0 = (first_chunk + chunks copied) * tokens_per_chunk. The data was
    // copied out by the deliver callback; count it.
    uint64_t got_chunks = r.value / ns.tokens_per_chunk - f.first_chunk;
    total.value = (f.first_chunk + got_chunks) * ns.tokens_per_chunk;
    if (f.first_chunk + got_chunks < f.end_chunk) prefix_ended = true;
  };
  for (uint64_t c0 = 0; c0 < chunks && !prefix_ended; c0 += piece) {
    uint64_t c1 = std::min(chunks, c0 + piece);
    uint64_t bytes = (c1 - c0) * ns.chunk_bytes;
    auto off = c.AllocateStaging(bytes, deadline);
    if (!off.ok()) {
      total.status = off.status();
      break;
    }
    HeapRange d{*off, bytes, true};
    SubmissionEntry e = Entry(Opcode::kRetrieve, ns, t, c1 * ns.tokens_per_chunk);
    e.data_offset = d.offset;
    e.data_bytes = bytes;
    e.arg0 = c0;
    const uint64_t cb = ns.chunk_bytes, per = ns.tokens_per_chunk;
    auto deliver = [&c, d, dst, c0, cb, per](OpResult& r) {
      if (!r.status.ok() || r.value <= c0 * per) return;
      std::memcpy(dst + c0 * cb, c.heap() + d.offset, (r.value / per - c0) * cb);
    };
    auto id = c.Submit(e, deliver, [&c, d](OpResult&) { Release(c, d); }, deadline);
    if (!id.ok()) {
      total.status = id.status();
      break;
    }
    inflight.push_back({*id, c0, c1, d});
    if (inflight.size() == max_inflight) retire();
  }
  while (!inflight.empty()) retire();
  ReleaseSharedTokens(c, t, deadline, abandoned);
  return total;
}

PendingBlockOp::~PendingBlockOp() {
  if (!finished_) c_->Release(id_);
}

OpResult PendingBlockOp::Poll() {
  if (finished_) return result_;
  OpResult r = c_->Poll(id_);
  if (r.status.code() == StatusCode::kBusy) return r;
  finished_ = true;
  result_ = r;
  return r;
}

OpResult PendingBlockOp::Wait(Deadline deadline) {
  if (finished_) return result_;
  OpResult r = c_->Wait(id_, deadline);
  if (r.status.code() == StatusCode::kTimeout) return r;  // still pending; may wait again
  finished_ = true;
  result_ = r;
  return r;
}

StatusOr<std::unique_ptr<PendingBlockOp>> SubmitBlockOp(Connection& c, const NamespaceInfo& ns, Opcode op,
                                                        const uint32_t* tokens, uint64_t num_tokens, void* data,
                                                        uint64_t bytes) {
  Deadline deadline = c.DefaultDeadline();
  uint64_t chunks = num_tokens / ns.tokens_per_chunk;
  if (op == Opcode::kStore && bytes != chunks * ns.chunk_bytes) {
    return InvalidArgument("kv_bytes is " + std::to_string(bytes) + " but " + std::to_string(chunks) +
                           " whole chunks need " + std::to_string(chunks * ns.chunk_bytes));
  }
  if (op == Opcode::kRetrieve) {
    chunks = std::min(chunks, bytes / ns.chunk_bytes);
    bytes = chunks * ns.chunk_bytes;
  }
  KVT_ASSIGN_OR_RETURN(HeapRange t, PlaceTokens(c, tokens, chunks * ns.tokens_per_chunk, deadline));
  HeapRange d;
  d.bytes = bytes;
  if (bytes > 0 && !c.InHeap(data, bytes, &d.offset)) {
    auto off = c.AllocateStaging(bytes, deadline);
    if (!off.ok()) {
      Release(c, t);
      return off.status().WithContext("asynchronous requests stage in one piece");
    }
    d.offset = *off;
    d.staged = true;
    if (op == Opcode::kStore) std::memcpy(c.heap() + d.offset, data, bytes);
  }
  SubmissionEntry e = Entry(op, ns, t, chunks * ns.tokens_per_chunk);
  e.data_offset = d.offset;
  e.data_bytes = d.bytes;
  Connection::Finalizer deliver;
  if (op == Opcode::kRetrieve && d.staged) {
    const uint64_t cb = ns.chunk_bytes, per = ns.tokens_per_chunk;
    char* dst = static_cast<char*>(data);
    deliver = [&c, d, dst, cb, per](OpResult& r) {
      if (r.status.ok() && r.value > 0) std::memcpy(dst, c.heap() + d.offset, r.value / per * cb);
    };
  }
  auto cleanup = [&c, t, d](OpResult&) {
    Release(c, t);
    Release(c, d);
  };
  KVT_ASSIGN_OR_RETURN(Connection::OpId id, c.Submit(e, std::move(deliver), std::move(cleanup), deadline));
  return std::make_unique<PendingBlockOp>(&c, id);
}

Status LookupBatch(Connection& c, const NamespaceInfo& ns, std::span<const TokenSpan> spans, uint64_t* matched) {
  Status first;
  const size_t window = std::max<uint32_t>(1, c.ring_entries() / 2);
  std::deque<std::pair<size_t, std::unique_ptr<PendingBlockOp>>> inflight;
  auto retire = [&] {
    auto& [i, op] = inflight.front();
    OpResult r = op->Wait(c.DefaultDeadline());
    matched[i] = r.status.ok() ? r.value : 0;
    if (!r.status.ok() && first.ok()) first = r.status.WithContext("span " + std::to_string(i));
    inflight.pop_front();
  };
  for (size_t i = 0; i < spans.size(); ++i) {
    auto op = SubmitBlockOp(c, ns, Opcode::kLookup, spans[i].tokens, spans[i].num_tokens, nullptr, 0);
    if (!op.ok()) {
      matched[i] = 0;
      if (first.ok()) first = op.status().WithContext("span " + std::to_string(i));
      continue;
    }
    inflight.emplace_back(i, std::move(*op));
    if (inflight.size() >= window) retire();
  }
  while (!inflight.empty()) retire();
  return first;
}

Status StoreBatch(Connection& c, const NamespaceInfo& ns, std::span<const TokenSpan> spans, const void* const* kvs,
                  const uint64_t* kv_bytes, uint64_t* stored_chunks) {
  Status first;
  *stored_chunks = 0;
  std::deque<std::pair<size_t, std::unique_ptr<PendingBlockOp>>> inflight;
  auto retire = [&] {
    auto& [i, op] = inflight.front();
    OpResult r = op->Wait(c.DefaultDeadline());
    *stored_chunks += r.value;
    if (!r.status.ok() && first.ok()) first = r.status.WithContext("span " + std::to_string(i));
    inflight.pop_front();
  };
  for (size_t i = 0; i < spans.size(); ++i) {
    // Small spans go out together; one too large to stage in a piece goes through the split path.
    if (kv_bytes[i] > c.heap_bytes() / 4) {
      while (!inflight.empty()) retire();
      OpResult r = Store(c, ns, spans[i].tokens, spans[i].num_tokens, kvs[i], kv_bytes[i]);
      *stored_chunks += r.value;
      if (!r.status.ok() && first.ok()) first = r.status.WithContext("span " + std::to_string(i));
      continue;
    }
    auto op = SubmitBlockOp(c, ns, Opcode::kStore, spans[i].tokens, spans[i].num_tokens, const_cast<void*>(kvs[i]),
                            kv_bytes[i]);
    if (!op.ok()) {
      if (first.ok()) first = op.status().WithContext("span " + std::to_string(i));
      continue;
    }
    inflight.emplace_back(i, std::move(*op));
    if (inflight.size() >= 4) retire();
  }
  while (!inflight.empty()) retire();
  return first;
}

StatusOr<uint64_t> AllocateBuffer(Connection& c, uint64_t bytes) { return c.AllocateUserBuffer(bytes); }

void FreeBuffer(Connection& c, void* ptr) {
  uint64_t off;
  if (c.InHeap(ptr, 1, &off)) c.FreeUserBuffer(off).IgnoreError();
}

Status FetchStats(Connection& c, protocol::DaemonStats* out) {
  Deadline deadline = c.DefaultDeadline();
  KVT_ASSIGN_OR_RETURN(uint64_t off, c.AllocateStaging(sizeof *out, deadline));
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kStats);
  e.data_offset = off;
  e.data_bytes = sizeof *out;
  HeapRange d{off, sizeof *out, true};
  char* heap = c.heap();
  // A 1.0 daemon writes only the 1.0 part (value: bytes written): the rest stays zero.
  auto deliver = [heap, off, out](OpResult& r) {
    if (!r.status.ok()) return;
    *out = protocol::DaemonStats{};
    std::memcpy(out, heap + off, std::min<uint64_t>(r.value, sizeof *out));
  };
  KVT_ASSIGN_OR_RETURN(auto id, c.Submit(e, deliver, [&c, d](OpResult&) { Release(c, d); }, deadline));
  return WaitOrAbandon(c, id, deadline).status;
}

Status ListNamespaces(Connection& c, protocol::NamespaceListing* out, uint64_t capacity, uint64_t* written,
                      uint64_t* known) {
  Deadline deadline = c.DefaultDeadline();
  uint64_t bytes = std::max<uint64_t>(1, capacity) * sizeof(protocol::NamespaceListing);
  KVT_ASSIGN_OR_RETURN(uint64_t off, c.AllocateStaging(bytes, deadline));
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kListNamespaces);
  e.data_offset = off;
  e.data_bytes = capacity * sizeof(protocol::NamespaceListing);
  HeapRange d{off, bytes, true};
  char* heap = c.heap();
  auto deliver = [heap, off, out](OpResult& r) {
    if (r.status.ok() && r.value > 0) std::memcpy(out, heap + off, r.value * sizeof(protocol::NamespaceListing));
  };
  KVT_ASSIGN_OR_RETURN(auto id, c.Submit(e, deliver, [&c, d](OpResult&) { Release(c, d); }, deadline));
  OpResult r = WaitOrAbandon(c, id, deadline);
  *written = r.value;
  *known = r.value2;
  return r.status;
}

}  // namespace kvt::client
