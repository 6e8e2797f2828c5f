// NvmeMetrics — the NVMe tier's Prometheus series, in the families the BlockStore uses for the
// host tier (tier="nvme"), plus tier moves, integrity and queue information.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

#include "host/nvme/io_queue.h"
#include "tiering/transfer_priority.h"

namespace kvt::nvme {

struct NvmeMetrics {
  explicit NvmeMetrics(prometheus::Registry& registry);
  // kvt_nvme_queue_info{queue=..., direct=..., registered=...} 1
  void SetQueueInfo(prometheus::Registry& registry, const IoQueueCapabilities& caps);
  // kvt_tier_moves_bytes_total and kvt_tier_moves_chunks_total, one chunk of `bytes`.
  void CountPromotion(tiering::TransferPriority p, uint64_t bytes) {
    const bool prefetch = p == tiering::TransferPriority::kPrefetch;
    (prefetch ? promotion_prefetch_bytes : promotion_demand_bytes).Increment(static_cast<double>(bytes));
    (prefetch ? promotion_prefetch_chunks : promotion_demand_chunks).Increment();
  }
  void CountDemotion(uint64_t bytes) {
    demotion_bytes.Increment(static_cast<double>(bytes));
    demotion_chunks.Increment();
  }
  void CountCompaction(uint64_t bytes) {
    compaction_bytes.Increment(static_cast<double>(bytes));
    compaction_chunks.Increment();
  }

  prometheus::Counter& hits;
  prometheus::Counter& misses;
  prometheus::Counter& stored_chunks;
  prometheus::Counter& written_bytes;
  prometheus::Counter& read_bytes;
  prometheus::Counter& evictions;
  prometheus::Counter& checksum_failures;
  prometheus::Counter& read_errors;
  prometheus::Counter& write_errors;
  prometheus::Counter& sync_errors;
  prometheus::Counter& demotion_bytes;
  prometheus::Counter& promotion_demand_bytes;
  prometheus::Counter& promotion_prefetch_bytes;
  prometheus::Counter& compaction_bytes;
  prometheus::Counter& demotion_chunks;
  prometheus::Counter& promotion_demand_chunks;
  prometheus::Counter& promotion_prefetch_chunks;
  prometheus::Counter& compaction_chunks;
  prometheus::Counter& dropped_admission;
  prometheus::Counter& dropped_staging_full;
  prometheus::Counter& dropped_no_space;
  prometheus::Counter& dropped_too_large;
  prometheus::Counter& compactions;
  prometheus::Counter& recovered_chunks;
  prometheus::Counter& torn_records;
  prometheus::Counter& prefetches;
  prometheus::Counter& flushes;
  prometheus::Gauge& capacity_bytes;
  prometheus::Gauge& used_bytes;
  prometheus::Gauge& chunk_count;
  prometheus::Gauge& enabled;
};

}  // namespace kvt::nvme
