// The C ABI of include/kvt/kvt.h over client::Connection. No exception crosses this boundary:
// every entry point converts failures to a kvt_status_t plus the thread-local message.
#include "include/kvt/kvt.h"

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "client/block_ops.h"
#include "client/connection.h"
#include "client/internal/abi_guard.h"
#include "client/internal/abi_handles.h"
#include "client/sequence_stats_publisher.h"
#include "protocol/default_socket.h"
#include "protocol/version.h"

static_assert(KVT_STATUS_INTERNAL == static_cast<int>(kvt::StatusCode::kInternal));
static_assert(KVT_STATUS_BUSY == static_cast<int>(kvt::StatusCode::kBusy));
static_assert(KVT_ABI_VERSION_MAJOR == kvt::protocol::kProtocolMajor);


struct kvt_op {
  kvt_client* client;
  std::unique_ptr<kvt::client::PendingBlockOp> pending;
};

namespace {

thread_local std::string g_last_error;

using kvt::client::AbiDone;
using kvt::client::AbiFail;
using kvt::client::AbiGuard;

void SetOut(uint64_t* out, uint64_t v) {
  if (out) *out = v;
}

}  // namespace

// Every part of the ABI (this file, sequence_api.cc, gpu_api.cc) reports through the same
// thread-local last-error message.
namespace kvt::client {
kvt_status_t AbiFail(const kvt::Status& s) {
  g_last_error = s.ToString();
  return static_cast<kvt_status_t>(s.code());
}

StatusOr<std::shared_ptr<SequenceStatsPublisher>> SequenceStatsOf(kvt_client* client) {
  std::lock_guard lock(client->sequence_stats_mu);
  if (!client->sequence_stats) {
    KVT_ASSIGN_OR_RETURN(client->sequence_stats, SequenceStatsPublisher::Create(*client->connection));
  }
  return client->sequence_stats;
}
}  // namespace kvt::client

extern "C" {

const char* kvt_status_name(kvt_status_t status) {
  static thread_local std::string name;
  name = std::string(kvt::StatusCodeName(static_cast<kvt::StatusCode>(status)));
  return name.c_str();
}

const char* kvt_last_error_message(void) { return g_last_error.c_str(); }

void kvt_version(uint32_t* major, uint32_t* minor, uint32_t* patch) {
  if (major) *major = KVT_ABI_VERSION_MAJOR;
  if (minor) *minor = KVT_ABI_VERSION_MINOR;
  if (patch) *patch = KVT_ABI_VERSION_PATCH;
}

uint32_t kvt_protocol_version(void) { return kvt::protocol::kProtocolVersion; }

uint64_t kvt_default_socket_path(char* out, uint64_t capacity) {
  try {
    const std::string path = kvt::protocol::ClientSocketPath();
    if (out != nullptr && capacity > path.size()) {
      std::memcpy(out, path.data(), path.size());
      out[path.size()] = '\0';
    }
    return path.size();
  } catch (...) {
    return 0;
  }
}

void kvt_client_options_init(kvt_client_options_t* options) {
  if (!options) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
}

kvt_status_t kvt_client_open(const kvt_client_options_t* options, kvt_client_t** out_client) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!out_client) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out_client is NULL");
    *out_client = nullptr;
    kvt::client::ConnectionOptions o;
    if (options) {
      if (options->struct_size < sizeof(kvt_client_options_t)) {
        return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "options->struct_size is too small (call kvt_client_options_init)");
      }
      if (options->socket_path) o.socket_path = options->socket_path;
      if (options->tenant) o.tenant = options->tenant;
      o.heap_bytes = options->heap_bytes;
      o.ring_entries = options->ring_entries;
      if (options->timeout_ns > 0) o.timeout = std::chrono::nanoseconds(options->timeout_ns);
      if (options->timeout_ns < 0) o.timeout = std::chrono::hours(24 * 365);
    }
    auto c = kvt::client::Connection::Open(o);
    if (!c.ok()) return AbiFail(c.status());
    *out_client = new kvt_client{};
    (*out_client)->connection = std::move(*c);
    return KVT_STATUS_OK;
  });
}

void kvt_client_close(kvt_client_t* client) { delete client; }

void kvt_layout_init(kvt_layout_t* layout) {
  if (!layout) return;
  std::memset(layout, 0, sizeof *layout);
  layout->struct_size = sizeof *layout;
  layout->dtype = KVT_DTYPE_F16;
}

kvt_status_t kvt_namespace_open(kvt_client_t* client, const kvt_layout_t* layout, kvt_namespace_t** out_namespace) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client || !layout || !out_namespace) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    *out_namespace = nullptr;
    if (layout->struct_size < sizeof(kvt_layout_t)) {
      return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "layout->struct_size is too small (call kvt_layout_init)");
    }
    if (!layout->model_id) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "layout->model_id is NULL");
    auto info = kvt::client::OpenNamespace(*client->connection, layout->model_id, layout->num_layers,
                                           layout->num_kv_heads, layout->head_dim, static_cast<uint32_t>(layout->dtype),
                                           layout->tokens_per_chunk);
    if (!info.ok()) return AbiFail(info.status());
    *out_namespace = new kvt_namespace{client, *info};
    return KVT_STATUS_OK;
  });
}

void kvt_namespace_close(kvt_namespace_t* ns) {
  if (!ns) return;
  kvt::client::CloseNamespace(*ns->client->connection, ns->info).IgnoreError();
  delete ns;
}

uint64_t kvt_namespace_chunk_bytes(const kvt_namespace_t* ns) { return ns ? ns->info.chunk_bytes : 0; }
uint32_t kvt_namespace_tokens_per_chunk(const kvt_namespace_t* ns) { return ns ? ns->info.tokens_per_chunk : 0; }

#define KVT_CHECK_NS(ns) \
  if (!(ns)) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "namespace is NULL")
#define KVT_CHECK_TOKENS(tokens, n) \
  if (!(tokens) && (n) > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "tokens is NULL")

kvt_status_t kvt_block_store(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens, const void* kv,
                             uint64_t kv_bytes, uint64_t* out_stored_chunks) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    if (!kv && kv_bytes > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "kv is NULL");
    auto r = kvt::client::Store(*ns->client->connection, ns->info, tokens, num_tokens, kv, kv_bytes);
    SetOut(out_stored_chunks, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_lookup(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                              uint64_t* out_matched_tokens) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    auto r = kvt::client::Simple(*ns->client->connection, ns->info, kvt::protocol::Opcode::kLookup, tokens, num_tokens);
    SetOut(out_matched_tokens, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_retrieve(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens, void* out,
                                uint64_t out_bytes, uint64_t* out_retrieved_tokens) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    if (!out && out_bytes > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out is NULL");
    auto r = kvt::client::Retrieve(*ns->client->connection, ns->info, tokens, num_tokens, out, out_bytes);
    SetOut(out_retrieved_tokens, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_remove(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                              uint64_t* out_removed_chunks) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    auto r = kvt::client::Simple(*ns->client->connection, ns->info, kvt::protocol::Opcode::kRemove, tokens, num_tokens);
    SetOut(out_removed_chunks, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_pin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens, uint64_t* out_pinned) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    auto r = kvt::client::Simple(*ns->client->connection, ns->info, kvt::protocol::Opcode::kPin, tokens, num_tokens);
    SetOut(out_pinned, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_unpin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                             uint64_t* out_unpinned) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    auto r = kvt::client::Simple(*ns->client->connection, ns->info, kvt::protocol::Opcode::kUnpin, tokens, num_tokens);
    SetOut(out_unpinned, r.value);
    return AbiDone(r.status);
  });
}

static kvt_status_t SubmitAsync(kvt_namespace_t* ns, kvt::protocol::Opcode op, const uint32_t* tokens,
                                uint64_t num_tokens, void* data, uint64_t bytes, kvt_op_t** out_op) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    KVT_CHECK_TOKENS(tokens, num_tokens);
    if (!out_op) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out_op is NULL");
    *out_op = nullptr;
    auto pending = kvt::client::SubmitBlockOp(*ns->client->connection, ns->info, op, tokens, num_tokens, data, bytes);
    if (!pending.ok()) return AbiFail(pending.status());
    *out_op = new kvt_op{ns->client, std::move(*pending)};
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_block_store_async(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens, const void* kv,
                                   uint64_t kv_bytes, kvt_op_t** out_op) {
  return SubmitAsync(ns, kvt::protocol::Opcode::kStore, tokens, num_tokens, const_cast<void*>(kv), kv_bytes, out_op);
}

kvt_status_t kvt_block_lookup_async(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                                    kvt_op_t** out_op) {
  return SubmitAsync(ns, kvt::protocol::Opcode::kLookup, tokens, num_tokens, nullptr, 0, out_op);
}

kvt_status_t kvt_block_retrieve_async(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens, void* out,
                                      uint64_t out_bytes, kvt_op_t** out_op) {
  return SubmitAsync(ns, kvt::protocol::Opcode::kRetrieve, tokens, num_tokens, out, out_bytes, out_op);
}

kvt_status_t kvt_op_poll(kvt_op_t* op, uint64_t* out_value) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!op) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "op is NULL");
    auto r = op->pending->Poll();
    if (r.status.code() == kvt::StatusCode::kBusy) return KVT_STATUS_BUSY;
    SetOut(out_value, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_op_wait(kvt_op_t* op, int64_t timeout_ns, uint64_t* out_value) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!op) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "op is NULL");
    kvt::Deadline d = timeout_ns < 0 ? op->client->connection->DefaultDeadline()
                                     : kvt::Deadline::After(std::chrono::nanoseconds(timeout_ns));
    auto r = op->pending->Wait(d);
    SetOut(out_value, r.value);
    return AbiDone(r.status);
  });
}

void kvt_op_release(kvt_op_t* op) { delete op; }

kvt_status_t kvt_block_lookup_batch(kvt_namespace_t* ns, const kvt_token_span_t* spans, uint64_t count,
                                    uint64_t* out_matched_tokens) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    if ((!spans || !out_matched_tokens) && count > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    std::vector<kvt::client::TokenSpan> s(count);
    for (uint64_t i = 0; i < count; ++i) s[i] = {spans[i].tokens, spans[i].num_tokens};
    return AbiDone(kvt::client::LookupBatch(*ns->client->connection, ns->info, s, out_matched_tokens));
  });
}

kvt_status_t kvt_block_store_batch(kvt_namespace_t* ns, const kvt_token_span_t* spans, const void* const* kvs,
                                   const uint64_t* kv_bytes, uint64_t count, uint64_t* out_stored_chunks) {
  return AbiGuard([&]() -> kvt_status_t {
    KVT_CHECK_NS(ns);
    if ((!spans || !kvs || !kv_bytes) && count > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    std::vector<kvt::client::TokenSpan> s(count);
    for (uint64_t i = 0; i < count; ++i) s[i] = {spans[i].tokens, spans[i].num_tokens};
    uint64_t stored = 0;
    kvt::Status st = kvt::client::StoreBatch(*ns->client->connection, ns->info, s, kvs, kv_bytes, &stored);
    SetOut(out_stored_chunks, stored);
    return AbiDone(st);
  });
}

kvt_status_t kvt_buffer_alloc(kvt_client_t* client, uint64_t bytes, void** out_ptr) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client || !out_ptr) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    *out_ptr = nullptr;
    auto off = kvt::client::AllocateBuffer(*client->connection, bytes);
    if (!off.ok()) return AbiFail(off.status());
    *out_ptr = client->connection->heap() + *off;
    return KVT_STATUS_OK;
  });
}

void kvt_buffer_free(kvt_client_t* client, void* ptr) {
  if (!client || !ptr) return;
  kvt::client::FreeBuffer(*client->connection, ptr);
}

kvt_status_t kvt_daemon_stats(kvt_client_t* client, kvt_daemon_stats_t* out_stats) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client || !out_stats) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    // 1.0 callers pass the 1.0 size (up to nvme_chunks); they get that part.
    constexpr size_t kV10Size = offsetof(kvt_daemon_stats_t, nvme_chunks) + sizeof(uint64_t);
    static_assert(kV10Size == kvt::protocol::kDaemonStatsV10Bytes);
    if (out_stats->struct_size < kV10Size) {
      return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out_stats->struct_size must be sizeof(kvt_daemon_stats_t)");
    }
    kvt::protocol::DaemonStats s{};
    kvt::Status st = kvt::client::FetchStats(*client->connection, &s);
    if (!st.ok()) return AbiFail(st);
    const uint32_t size = out_stats->struct_size;
    static_assert(sizeof(kvt_daemon_stats_t) == sizeof(kvt::protocol::DaemonStats));
    const size_t fill = std::min<size_t>(size, sizeof(kvt_daemon_stats_t));
    out_stats->protocol_version = s.protocol_version;
    std::memcpy(&out_stats->uptime_ns, &s.uptime_ns, fill - offsetof(kvt_daemon_stats_t, uptime_ns));
    out_stats->struct_size = size;
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_persist(kvt_client_t* client, int64_t timeout_ns) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "client is NULL");
    kvt::Deadline deadline = timeout_ns < 0 ? client->connection->DefaultDeadline()
                                            : kvt::Deadline::FromTimeoutNs(timeout_ns);
    kvt::protocol::SubmissionEntry e{};
    e.opcode = static_cast<uint16_t>(kvt::protocol::Opcode::kPersist);
    e.arg0 = std::max<uint64_t>(1, static_cast<uint64_t>(deadline.remaining().count()));
    auto r = client->connection->Call(e, deadline);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_daemon_evict(kvt_client_t* client, uint64_t bytes, uint64_t* out_evicted_chunks) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "client is NULL");
    kvt::protocol::SubmissionEntry e{};
    e.opcode = static_cast<uint16_t>(kvt::protocol::Opcode::kEvict);
    e.arg0 = bytes;
    auto r = client->connection->Call(e, client->connection->DefaultDeadline());
    SetOut(out_evicted_chunks, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_daemon_list_namespaces(kvt_client_t* client, kvt_namespace_info_t* out, uint64_t capacity,
                                        uint64_t* out_count) {
  static_assert(sizeof(kvt_namespace_info_t) == sizeof(kvt::protocol::NamespaceListing));
  return AbiGuard([&]() -> kvt_status_t {
    if (!client || !out_count || (!out && capacity > 0)) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    uint64_t written = 0;
    kvt::Status s = kvt::client::ListNamespaces(*client->connection,
                                                reinterpret_cast<kvt::protocol::NamespaceListing*>(out), capacity,
                                                &written, out_count);
    return AbiDone(s);
  });
}

}  // extern "C"
