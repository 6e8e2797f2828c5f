#include "host/remote/remote_metrics.h"

namespace kvt::remote {
namespace {

using prometheus::Labels;

prometheus::Counter& C(prometheus::Registry& r, const std::string& name, const std::string& help, Labels labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}
prometheus::Gauge& G(prometheus::Registry& r, const std::string& name, const std::string& help, Labels labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}

// Help strings of families shared with other tiers must match theirs word for word.
const char kIoErrors[] = "I/O errors by tier and operation";
const char kRejected[] = "Remote values read but not served, by reason (foreign, stale, corrupt)";
const char kDropped[] = "Write-behind to the remote tier not performed, by reason";
const char kRedirects[] = "Redis Cluster redirections followed, by kind";

}  // namespace

RemoteMetrics::RemoteMetrics(prometheus::Registry& r)
    : hits(C(r, "kvt_tier_hits_total", "Chunk hits by tier", {{"tier", "remote"}})),
      misses(C(r, "kvt_tier_misses_total", "Chunk misses by tier", {{"tier", "remote"}})),
      stored_chunks(C(r, "kvt_chunks_stored_total", "Chunks newly stored, by tier", {{"tier", "remote"}})),
      written_bytes(C(r, "kvt_bytes_written_total", "Payload bytes written, by tier", {{"tier", "remote"}})),
      read_bytes(C(r, "kvt_bytes_read_total", "Payload bytes read, by tier", {{"tier", "remote"}})),
      checksum_failures(C(r, "kvt_checksum_failures_total", "Chunks that failed verification, by tier",
                          {{"tier", "remote"}})),
      rejected_foreign(C(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "foreign"}})),
      rejected_stale(C(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "stale"}})),
      rejected_corrupt(C(r, "kvt_remote_rejected_values_total", kRejected, {{"reason", "corrupt"}})),
      read_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "remote"}, {"op", "read"}})),
      write_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "remote"}, {"op", "write"}})),
      connect_errors(C(r, "kvt_io_errors_total", kIoErrors, {{"tier", "remote"}, {"op", "connect"}})),
      reconnects(C(r, "kvt_remote_reconnects_total", "Connections to Redis re-established after a failure", {})),
      moved(C(r, "kvt_remote_redirects_total", kRedirects, {{"kind", "moved"}})),
      ask(C(r, "kvt_remote_redirects_total", kRedirects, {{"kind", "ask"}})),
      dropped_queue_full(C(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "queue_full"}})),
      dropped_unavailable(C(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "unavailable"}})),
      dropped_oom(C(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "oom"}})),
      dropped_error(C(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "error"}})),
      dropped_shutdown(C(r, "kvt_remote_writes_dropped_total", kDropped, {{"reason", "shutdown"}})),
      queue_bytes(G(r, "kvt_remote_write_queue_bytes", "Bytes waiting for write-behind to Redis", {})),
      up(G(r, "kvt_remote_up", "1 when the Redis topology is known and the remote tier is serving", {})),
      nodes(G(r, "kvt_remote_nodes", "Redis master nodes in the current topology", {})) {}

}  // namespace kvt::remote
