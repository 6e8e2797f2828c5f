#include "host/remote/remote_metrics.h"

#include "tiering/tier_metrics.h"

namespace kvt::remote {
namespace {

using tiering::metrics::AddCounter;
using tiering::metrics::AddGauge;
namespace shared = tiering::metrics;  // the families other tiers report into too

const char kRejected[] = "Remote values read but not served, by reason (foreign, stale, corrupt)";
const char kDropped[] = "Write-behind to the remote tier not performed, by reason";
const char kRedirects[] = "Redis Cluster redirections followed, by kind";

}  // namespace

RemoteMetrics::RemoteMetrics(prometheus::Registry& r)
    : hits(AddCounter(r, shared::kHits, {{"tier", "remote"}})),
      misses(AddCounter(r, shared::kMisses, {{"tier", "remote"}})),
      stored_chunks(AddCounter(r, shared::kChunksStored, {{"tier", "remote"}})),
      written_bytes(AddCounter(r, shared::kBytesWritten, {{"tier", "remote"}})),
      read_bytes(AddCounter(r, shared::kBytesRead, {{"tier", "remote"}})),
      checksum_failures(AddCounter(r, shared::kChecksumFailures, {{"tier", "remote"}})),
      rejected_foreign(
          AddCounter(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "foreign"}})),
      rejected_stale(
          AddCounter(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "stale"}})),
      rejected_corrupt(
          AddCounter(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "corrupt"}})),
      read_errors(AddCounter(r, shared::kIoErrors, {{"tier", "remote"}, {"op", "read"}})),
      write_errors(AddCounter(r, shared::kIoErrors, {{"tier", "remote"}, {"op", "write"}})),
      connect_errors(AddCounter(r, shared::kIoErrors, {{"tier", "remote"}, {"op", "connect"}})),
      reconnects(AddCounter(r, "kvt_remote_reconnects_total",
                            "Connections to Redis re-established after a failure", {})),
      moved(AddCounter(r, "kvt_remote_redirects_total", kRedirects, {{"kind", "moved"}})),
      ask(AddCounter(r, "kvt_remote_redirects_total", kRedirects, {{"kind", "ask"}})),
      dropped_queue_full(
          AddCounter(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "queue_full"}})),
      dropped_unavailable(
          AddCounter(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "unavailable"}})),
      dropped_oom(AddCounter(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "oom"}})),
      dropped_error(
          AddCounter(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "error"}})),
      dropped_shutdown(
          AddCounter(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "shutdown"}})),
      queue_bytes(AddGauge(r, "kvt_remote_write_queue_bytes",
                           "Bytes waiting for write-behind to Redis", {})),
      up(AddGauge(r, "kvt_remote_up",
                  "1 when the Redis topology is known and the remote tier is serving", {})),
      nodes(AddGauge(r, "kvt_remote_nodes", "Redis master nodes in the current topology", {})) {}

}  // namespace kvt::remote
