#include "host/nvme/nvme_metrics.h"

#include "tiering/tier_metrics.h"

namespace kvt::nvme {
namespace {

using tiering::metrics::AddCounter;
using tiering::metrics::AddGauge;
namespace shared = tiering::metrics;  // the families other tiers report into too

const char kMoves[] = "Bytes moved between tiers, by direction and priority";
const char kMovesChunks[] = "Chunks moved between tiers, by direction and priority";
const char kDropped[] = "Demotions to NVMe not performed, by reason";

}  // namespace

NvmeMetrics::NvmeMetrics(prometheus::Registry& r)
    : hits(AddCounter(r, shared::kHits, {{"tier", "nvme"}})),
      misses(AddCounter(r, shared::kMisses, {{"tier", "nvme"}})),
      stored_chunks(AddCounter(r, shared::kChunksStored, {{"tier", "nvme"}})),
      written_bytes(AddCounter(r, shared::kBytesWritten, {{"tier", "nvme"}})),
      read_bytes(AddCounter(r, shared::kBytesRead, {{"tier", "nvme"}})),
      evictions(AddCounter(r, shared::kEvictions, {{"tier", "nvme"}, {"reason", "capacity"}})),
      checksum_failures(AddCounter(r, shared::kChecksumFailures, {{"tier", "nvme"}})),
      read_errors(AddCounter(r, shared::kIoErrors, {{"tier", "nvme"}, {"op", "read"}})),
      write_errors(AddCounter(r, shared::kIoErrors, {{"tier", "nvme"}, {"op", "write"}})),
      sync_errors(AddCounter(r, shared::kIoErrors, {{"tier", "nvme"}, {"op", "sync"}})),
      demotion_bytes(AddCounter(r, "kvt_tier_moves_bytes_total", kMoves,
                                {{"direction", "demotion"}, {"priority", "writeback"}})),
      promotion_demand_bytes(AddCounter(r, "kvt_tier_moves_bytes_total", kMoves,
                                        {{"direction", "promotion"}, {"priority", "demand"}})),
      promotion_prefetch_bytes(AddCounter(r, "kvt_tier_moves_bytes_total", kMoves,
                                          {{"direction", "promotion"}, {"priority", "prefetch"}})),
      compaction_bytes(AddCounter(r, "kvt_tier_moves_bytes_total", kMoves,
                                  {{"direction", "compaction"}, {"priority", "background"}})),
      demotion_chunks(AddCounter(r, "kvt_tier_moves_chunks_total", kMovesChunks,
                                 {{"direction", "demotion"}, {"priority", "writeback"}})),
      promotion_demand_chunks(AddCounter(r, "kvt_tier_moves_chunks_total", kMovesChunks,
                                         {{"direction", "promotion"}, {"priority", "demand"}})),
      promotion_prefetch_chunks(AddCounter(r, "kvt_tier_moves_chunks_total", kMovesChunks,
                                           {{"direction", "promotion"}, {"priority", "prefetch"}})),
      compaction_chunks(AddCounter(r, "kvt_tier_moves_chunks_total", kMovesChunks,
                                   {{"direction", "compaction"}, {"priority", "background"}})),
      dropped_admission(
          AddCounter(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "admission"}})),
      dropped_staging_full(AddCounter(r, "kvt_nvme_demotions_dropped_total", kDropped,
                                      {{"reason", "staging_full"}})),
      dropped_no_space(
          AddCounter(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "no_space"}})),
      dropped_too_large(
          AddCounter(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "too_large"}})),
      compactions(AddCounter(r, "kvt_nvme_segments_reclaimed_total",
                             "NVMe segments reclaimed, by how", {{"how", "compaction"}})),
      recovered_chunks(AddCounter(r, "kvt_nvme_recovered_chunks_total",
                                  "Chunks found by the start-up scan", {})),
      torn_records(AddCounter(r, "kvt_nvme_torn_records_total",
                              "Records dropped by the start-up scan (torn or corrupt payload)",
                              {})),
      prefetches(AddCounter(r, "kvt_nvme_prefetches_total",
                            "NVMe reads started by a lookup, ahead of the retrieve", {})),
      flushes(AddCounter(r, "kvt_nvme_flushes_total",
                         "fdatasync rounds of the NVMe tier (persist and periodic)", {})),
      capacity_bytes(AddGauge(r, shared::kCapacityBytes, {{"tier", "nvme"}})),
      used_bytes(AddGauge(r, shared::kUsedBytes, {{"tier", "nvme"}})),
      chunk_count(AddGauge(r, shared::kChunks, {{"tier", "nvme"}})),
      enabled(AddGauge(r, "kvt_tier_enabled",
                       "1 while a tier serves, 0 once it has disabled itself",
                       {{"tier", "nvme"}})) {}

void NvmeMetrics::SetQueueInfo(prometheus::Registry& r, const IoQueueCapabilities& caps) {
  AddGauge(r, "kvt_nvme_queue_info", "The NVMe tier's I/O queue (what the start-up probe chose)",
           {{"queue", caps.backend},
            {"direct", caps.direct ? "true" : "false"},
            {"registered", caps.registered_buffers ? "true" : "false"}})
      .Set(1);
}

}  // namespace kvt::nvme
