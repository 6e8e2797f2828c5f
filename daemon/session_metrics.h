// SessionMetrics — what the control and data planes measure: requests by operation and outcome,
// their latency, rejected requests by kind, connected clients per tenant, ring occupancy.
// Owned by the Server, shared by its sessions. Label sets are bounded (operations, status codes,
// tenants), never per key or per client.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <string>

#include "common/status.h"
#include "protocol/ops.h"

namespace kvt::daemon {

class SessionMetrics {
 public:
  explicit SessionMetrics(prometheus::Registry& registry);

  // One finished request: latency in seconds and the status it ended with.
  void Observe(protocol::Opcode op, StatusCode code, double seconds);
  // A request refused before execution (bad opcode, bad range, corrupt ring, ...).
  void BadRequest(const std::string& kind);
  prometheus::Gauge& ClientsGauge(const std::string& tenant);
  // Entries waiting in all clients' rings; sessions add their changes.
  prometheus::Gauge& RingOccupancyGauge(const std::string& ring);

  uint64_t bad_requests() const { return static_cast<uint64_t>(bad_total_); }
  uint64_t requests(protocol::Opcode op) const;

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& bad_;
  prometheus::Family<prometheus::Gauge>& clients_;
  prometheus::Family<prometheus::Gauge>& ring_occupancy_;
  std::array<prometheus::Histogram*, static_cast<size_t>(protocol::Opcode::kCount)> latency_by_op_{};
  std::array<prometheus::Counter*, static_cast<size_t>(protocol::Opcode::kCount)> ok_by_op_{};
  std::atomic<double> bad_total_{0};
};

std::string OpcodeName(protocol::Opcode op);

}  // namespace kvt::daemon
