#include "client/gpu_ops.h"

#include <algorithm>
#include <cstring>

namespace kvt::client {
namespace {

using protocol::Opcode;
using protocol::SubmissionEntry;

// Submits `e` (whose staging the cleanup frees) and waits; a timed-out op is released and frees
// its staging when it completes.
OpResult SubmitAndWait(Connection& c, const SubmissionEntry& e, Connection::Finalizer deliver,
                       Connection::Finalizer cleanup, Deadline deadline) {
  auto id = c.Submit(e, std::move(deliver), std::move(cleanup), deadline);
  if (!id.ok()) return {id.status()};
  OpResult r = c.Wait(*id, deadline);
  if (r.status.code() == StatusCode::kTimeout) c.Release(*id);
  return r;
}

}  // namespace

StatusOr<protocol::GpuPoolInfo> FetchGpuPoolInfo(Connection& c) {
  Deadline deadline = c.DefaultDeadline();
  constexpr uint64_t kBytes = sizeof(protocol::GpuPoolInfo);
  KVT_ASSIGN_OR_RETURN(uint64_t off, c.AllocateStaging(kBytes, deadline));
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kGpuPoolInfo);
  e.data_offset = off;
  e.data_bytes = kBytes;
  protocol::GpuPoolInfo info{};
  char* heap = c.heap();
  auto deliver = [heap, off, &info](OpResult& r) {
    if (r.status.ok()) std::memcpy(&info, heap + off, kBytes);
  };
  OpResult r = SubmitAndWait(c, e, deliver, [&c, off](OpResult&) { c.FreeHeap(off, kBytes); }, deadline);
  if (!r.status.ok()) return r.status;
  return info;
}

OpResult GpuAcquire(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens,
                    uint64_t* offsets, uint64_t max_chunks) {
  const uint64_t chunks = std::min(num_tokens / ns.tokens_per_chunk, max_chunks);
  if (chunks == 0) return {};
  Deadline deadline = c.DefaultDeadline();
  const uint64_t token_bytes = chunks * ns.tokens_per_chunk * sizeof(uint32_t);
  const uint64_t offset_bytes = chunks * sizeof(uint64_t);
  auto t = c.AllocateStaging(token_bytes, deadline);
  if (!t.ok()) return {t.status()};
  auto o = c.AllocateStaging(offset_bytes, deadline);
  if (!o.ok()) {
    c.FreeHeap(*t, token_bytes);
    return {o.status()};
  }
  const uint64_t t_off = *t, o_off = *o;
  std::memcpy(c.heap() + t_off, tokens, token_bytes);
  SubmissionEntry e{};
  e.opcode = static_cast<uint16_t>(Opcode::kGpuAcquire);
  e.ns = ns.handle;
  e.tokens_offset = t_off;
  e.num_tokens = chunks * ns.tokens_per_chunk;
  e.data_offset = o_off;
  e.data_bytes = offset_bytes;
  char* heap = c.heap();
  const uint64_t per = ns.tokens_per_chunk;
  auto deliver = [heap, o_off, offsets, per, chunks](OpResult& r) {
    const uint64_t got = std::min(chunks, r.value / per);  // also after a partial failure
    std::memcpy(offsets, heap + o_off, got * sizeof(uint64_t));
  };
  auto cleanup = [&c, t_off, token_bytes, o_off, offset_bytes](OpResult&) {
    c.FreeHeap(t_off, token_bytes);
    c.FreeHeap(o_off, offset_bytes);
  };
  return SubmitAndWait(c, e, deliver, cleanup, deadline);
}

OpResult GpuRelease(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens) {
  return Simple(c, ns, Opcode::kGpuRelease, tokens, num_tokens);
}

}  // namespace kvt::client
