// GPU-tier operations on a Connection (protocol 1.2): the pool's IPC export, and pinning a
// prefix's chunks on the GPU. Plain protocol: nothing here touches CUDA (gpu/pool_mapping.h maps
// the pool). A daemon without a GPU tier, or older than 1.2, answers UNSUPPORTED.
#pragma once

#include <cstdint>

#include "client/block_ops.h"
#include "client/connection.h"
#include "protocol/ops.h"

namespace kvt::client {

StatusOr<protocol::GpuPoolInfo> FetchGpuPoolInfo(Connection& c);

// Pins the leading chunks (at most max_chunks) on the GPU; offsets[i] receives chunk i's pool
// offset. value: tokens pinned (also with a RESOURCE_EXHAUSTED status after a partial success).
OpResult GpuAcquire(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens,
                    uint64_t* offsets, uint64_t max_chunks);
// value: tokens unpinned.
OpResult GpuRelease(Connection& c, const NamespaceInfo& ns, const uint32_t* tokens, uint64_t num_tokens);

}  // namespace kvt::client
