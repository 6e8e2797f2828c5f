// The GPU-tier part of the C ABI (include/kvt/kvt.h, ABI 1.2): mapping the daemon's GPU pool
// through CUDA IPC and pinning chunks on the GPU. Its own object file, so an engine linking the
// static library without calling these never links the CUDA runtime. No exception crosses this
// boundary.
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "client/gpu_ops.h"
#include "client/internal/abi_guard.h"
#include "client/internal/abi_handles.h"
#include "gpu/pool_mapping.h"
#include "include/kvt/kvt.h"

static_assert(sizeof(kvt::protocol::GpuPoolInfo::ipc_handle) == kvt::gpu::kIpcHandleBytes);
static_assert(sizeof(kvt::protocol::GpuPoolInfo::pci_bus_id) == kvt::gpu::kPciBusIdBytes);


namespace {

using kvt::client::AbiFail;

using kvt::client::AbiDone;
using kvt::client::AbiGuard;

void SetOut(uint64_t* out, uint64_t v) {
  if (out) *out = v;
}

}  // namespace

extern "C" {

kvt_status_t kvt_gpu_pool_map(kvt_client_t* client, kvt_gpu_pool_t* out_pool) {
  return AbiGuard([&]() -> kvt_status_t {
    if (!client || !out_pool) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "NULL argument");
    if (out_pool->struct_size < sizeof(kvt_gpu_pool_t)) {
      return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out_pool->struct_size must be sizeof(kvt_gpu_pool_t)");
    }
    std::lock_guard lock(client->gpu_mu);
    if (!client->gpu_pool) {
      auto info = kvt::client::FetchGpuPoolInfo(*client->connection);
      if (!info.ok()) return AbiFail(info.status());
      kvt::gpu::PoolExport pool;
      std::memcpy(pool.ipc_handle, info->ipc_handle, sizeof pool.ipc_handle);
      std::memcpy(pool.pci_bus_id, info->pci_bus_id, sizeof pool.pci_bus_id);
      pool.pci_bus_id[sizeof pool.pci_bus_id - 1] = '\0';
      pool.device = info->device;
      pool.bytes = info->capacity_bytes;
      kvt::client::Connection& c = *client->connection;
      auto mapping = kvt::gpu::PoolMapping::Open(pool, c.heap(), c.heap_bytes());
      if (!mapping.ok()) return AbiFail(mapping.status().WithContext("mapping the daemon's GPU pool"));
      client->gpu_pool = std::shared_ptr<kvt::gpu::PoolMapping>(std::move(*mapping));
    }
    const auto* m = static_cast<const kvt::gpu::PoolMapping*>(client->gpu_pool.get());
    out_pool->device = m->device();
    out_pool->capacity_bytes = m->bytes();
    out_pool->device_base = m->base();
    return KVT_STATUS_OK;
  });
}

kvt_status_t kvt_block_gpu_pin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                               uint64_t* out_offsets, uint64_t max_chunks, uint64_t* out_pinned_tokens) {
  return AbiGuard([&]() -> kvt_status_t {
    SetOut(out_pinned_tokens, 0);
    if (!ns) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "namespace is NULL");
    if (!tokens && num_tokens > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "tokens is NULL");
    if (!out_offsets && max_chunks > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "out_offsets is NULL");
    auto r = kvt::client::GpuAcquire(*ns->client->connection, ns->info, tokens, num_tokens, out_offsets, max_chunks);
    SetOut(out_pinned_tokens, r.value);
    return AbiDone(r.status);
  });
}

kvt_status_t kvt_block_gpu_unpin(kvt_namespace_t* ns, const uint32_t* tokens, uint64_t num_tokens,
                                 uint64_t* out_unpinned_tokens) {
  return AbiGuard([&]() -> kvt_status_t {
    SetOut(out_unpinned_tokens, 0);
    if (!ns) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "namespace is NULL");
    if (!tokens && num_tokens > 0) return AbiFail(KVT_STATUS_INVALID_ARGUMENT, "tokens is NULL");
    auto r = kvt::client::GpuRelease(*ns->client->connection, ns->info, tokens, num_tokens);
    SetOut(out_unpinned_tokens, r.value);
    return AbiDone(r.status);
  });
}

}  // extern "C"
