// NUMA placement with hwloc: the arena's pages and the daemon's worker threads go to one node
// (nearest the GPU or NVMe when known; node 0 otherwise). On a single-node machine both are
// no-ops that succeed.
#pragma once

#include <cstddef>

#include "common/status_or.h"

namespace kvt::host {

// Binds [addr, addr+bytes) to `node` (-1: automatic). Returns the node used.
StatusOr<int> BindToNumaNode(void* addr, size_t bytes, int node);

// Binds the calling thread to the CPUs of `node` (-1 or a single-node machine: no-op).
Status BindThreadToNumaNode(int node);

// Number of NUMA nodes hwloc sees (at least 1).
int NumaNodeCount();

}  // namespace kvt::host
