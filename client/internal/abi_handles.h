// The objects behind the C ABI's opaque client and namespace handles (include/kvt/kvt.h), shared
// by the files that implement the ABI (c_api.cc, gpu_api.cc). Private to client/.
#pragma once

#include <memory>
#include <mutex>

#include "client/block_ops.h"
#include "client/connection.h"
#include "client/heap_host_tier_memory.h"
#include "client/sequence_stats_publisher.h"
#include "include/kvt/kvt.h"

struct kvt_client {
  std::unique_ptr<kvt::client::Connection> connection;
  std::mutex sequence_stats_mu;
  std::shared_ptr<kvt::client::SequenceStatsPublisher> sequence_stats;  // first kvt_sequence_attach
  // The GPU pool mapped by kvt_gpu_pool_map (gpu_api.cc owns its type, so code that never maps
  // the pool never links CUDA). Declared after `connection`: unmapped, and the heap unregistered,
  // before the heap goes away.
  std::mutex gpu_mu;
  std::shared_ptr<void> gpu_pool;
  // The heap registered for DMA by the first GPU sequence opened in this client
  // (kvt_sequence_open_in_client); unregistered here, before the heap goes away.
  std::shared_ptr<kvt::client::HeapDmaRegistration> heap_dma;
  ~kvt_client() {
    if (sequence_stats) sequence_stats->Detach();  // before the heap it writes to goes away
    heap_dma.reset();
    gpu_pool.reset();
  }
};

struct kvt_namespace {
  kvt_client* client;
  kvt::client::NamespaceInfo info;
};
