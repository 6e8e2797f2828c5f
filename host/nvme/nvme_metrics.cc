#include "host/nvme/nvme_metrics.h"

namespace kvt::nvme {
namespace {

using prometheus::Labels;

prometheus::Counter& C(prometheus::Registry& r, const std::string& name, const std::string& help, Labels labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}
prometheus::Gauge& G(prometheus::Registry& r, const std::string& name, const std::string& help, Labels labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}

const char kIoErrors[] = "I/O errors by tier and operation";
const char kMoves[] = "Bytes moved between tiers, by direction and priority";
const char kMovesChunks[] = "Chunks moved between tiers, by direction and priority";
const char kDropped[] = "Demotions to NVMe not performed, by reason";

}  // namespace

NvmeMetrics::NvmeMetrics(prometheus::Registry& r)
    : hits(C(r, "kvt_tier_hits_total", "Chunk hits by tier", {{"tier", "nvme"}})),
      misses(C(r, "kvt_tier_misses_total", "Chunk misses by tier", {{"tier", "nvme"}})),
      stored_chunks(C(r, "kvt_chunks_stored_total", "Chunks newly stored, by tier", {{"tier", "nvme"}})),
      written_bytes(C(r, "kvt_bytes_written_total", "Payload bytes written, by tier", {{"tier", "nvme"}})),
      read_bytes(C(r, "kvt_bytes_read_total", "Payload bytes read, by tier", {{"tier", "nvme"}})),
      evictions(C(r, "kvt_evictions_total", "Chunks evicted, by tier and reason",
                  {{"tier", "nvme"}, {"reason", "capacity"}})),
      checksum_failures(C(r, "kvt_checksum_failures_total", "Chunks that failed verification, by tier",
                          {{"tier", "nvme"}})),
      read_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "nvme"}, {"op", "read"}})),
      write_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "nvme"}, {"op", "write"}})),
      sync_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "nvme"}, {"op", "sync"}})),
      demotion_bytes(C(r, "kvt_tier_moves_bytes_total", kMoves, {{"direction", "demotion"}, {"priority", "writeback"}})),
      promotion_demand_bytes(
          C(r, "kvt_tier_moves_bytes_total", kMoves, {{"direction", "promotion"}, {"priority", "demand"}})),
      promotion_prefetch_bytes(
          C(r, "kvt_tier_moves_bytes_total", kMoves, {{"direction", "promotion"}, {"priority", "prefetch"}})),
      compaction_bytes(
          C(r, "kvt_tier_moves_bytes_total", kMoves, {{"direction", "compaction"}, {"priority", "background"}})),
      demotion_chunks(
          C(r, "kvt_tier_moves_chunks_total", kMovesChunks, {{"direction", "demotion"}, {"priority", "writeback"}})),
      promotion_demand_chunks(
          C(r, "kvt_tier_moves_chunks_total", kMovesChunks, {{"direction", "promotion"}, {"priority", "demand"}})),
      promotion_prefetch_chunks(
          C(r, "kvt_tier_moves_chunks_total", kMovesChunks, {{"direction", "promotion"}, {"priority", "prefetch"}})),
      compaction_chunks(C(r, "kvt_tier_moves_chunks_total", kMovesChunks,
                          {{"direction", "compaction"}, {"priority", "background"}})),
      dropped_admission(C(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "admission"}})),
      dropped_staging_full(C(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "staging_full"}})),
      dropped_no_space(C(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "no_space"}})),
      dropped_too_large(C(r, "kvt_nvme_demotions_dropped_total", kDropped, {{"reason", "too_large"}})),
      compactions(C(r, "kvt_nvme_segments_reclaimed_total", "NVMe segments reclaimed, by how",
                    {{"how", "compaction"}})),
      recovered_chunks(C(r, "kvt_nvme_recovered_chunks_total", "Chunks found by the start-up scan", {})),
      torn_records(C(r, "kvt_nvme_torn_records_total",
                     "Records dropped by the start-up scan (torn or corrupt payload)", {})),
      prefetches(C(r, "kvt_nvme_prefetches_total", "NVMe reads started by a lookup, ahead of the retrieve", {})),
      flushes(C(r, "kvt_nvme_flushes_total", "fdatasync rounds of the NVMe tier (persist and periodic)", {})),
      capacity_bytes(G(r, "kvt_tier_capacity_bytes", "Configured capacity by tier", {{"tier", "nvme"}})),
      used_bytes(G(r, "kvt_tier_used_bytes", "Bytes in use by tier", {{"tier", "nvme"}})),
      chunk_count(G(r, "kvt_tier_chunks", "Resident chunks by tier", {{"tier", "nvme"}})),
      enabled(G(r, "kvt_tier_enabled", "1 while a tier serves, 0 once it has disabled itself", {{"tier", "nvme"}})) {}

void NvmeMetrics::SetQueueInfo(prometheus::Registry& r, const IoQueueCapabilities& caps) {
  G(r, "kvt_nvme_queue_info", "The NVMe tier's I/O queue (what the start-up probe chose)",
    {{"queue", caps.backend}, {"direct", caps.direct ? "true" : "false"},
     {"registered", caps.registered_buffers ? "true" : "false"}})
      .Set(1);
}

}  // namespace kvt::nvme
