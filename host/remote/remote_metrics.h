// RemoteMetrics — what the remote tier counts, registered on the daemon's registry under the
// tier-wide families shared with the other tiers (tier="remote") plus kvt_remote_* of its own.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace kvt::remote {

struct RemoteMetrics {
  explicit RemoteMetrics(prometheus::Registry& registry);

  prometheus::Counter& hits;            // kvt_tier_hits_total{tier="remote"}
  prometheus::Counter& misses;          // kvt_tier_misses_total{tier="remote"}
  prometheus::Counter& stored_chunks;   // kvt_chunks_stored_total{tier="remote"}
  prometheus::Counter& written_bytes;   // kvt_bytes_written_total{tier="remote"}
  prometheus::Counter& read_bytes;      // kvt_bytes_read_total{tier="remote"}
  prometheus::Counter& checksum_failures;  // kvt_checksum_failures_total{tier="remote"}
  prometheus::Counter& rejected_foreign;   // kvt_remote_rejected_values_total{reason=...}
  prometheus::Counter& rejected_stale;
  prometheus::Counter& rejected_corrupt;
  prometheus::Counter& read_errors;     // kvt_io_errors_total{tier="remote",op=...}
  prometheus::Counter& write_errors;
  prometheus::Counter& connect_errors;
  prometheus::Counter& reconnects;      // kvt_remote_reconnects_total
  prometheus::Counter& moved;           // kvt_remote_redirects_total{kind=...}
  prometheus::Counter& ask;
  prometheus::Counter& dropped_queue_full;   // kvt_remote_writes_dropped_total{reason=...}
  prometheus::Counter& dropped_unavailable;
  prometheus::Counter& dropped_oom;
  prometheus::Counter& dropped_error;
  prometheus::Counter& dropped_shutdown;
  prometheus::Gauge& queue_bytes;       // kvt_remote_write_queue_bytes
  prometheus::Gauge& up;                // kvt_remote_up: 1 once the topology is known
  prometheus::Gauge& nodes;             // kvt_remote_nodes
};

}  // namespace kvt::remote
