#include "daemon/session_metrics.h"

namespace kvt::daemon {

std::string OpcodeName(protocol::Opcode op) {
  using protocol::Opcode;
  switch (op) {
    case Opcode::kNop: return "nop";
    case Opcode::kOpenNamespace: return "open_namespace";
    case Opcode::kCloseNamespace: return "close_namespace";
    case Opcode::kStore: return "store";
    case Opcode::kLookup: return "lookup";
    case Opcode::kRetrieve: return "retrieve";
    case Opcode::kRemove: return "remove";
    case Opcode::kPin: return "pin";
    case Opcode::kUnpin: return "unpin";
    case Opcode::kStats: return "stats";
    case Opcode::kEvict: return "evict";
    case Opcode::kListNamespaces: return "list_namespaces";
    case Opcode::kPersist: return "persist";
    case Opcode::kRegisterSequenceStats: return "register_sequence_stats";
    case Opcode::kGpuPoolInfo: return "gpu_pool_info";
    case Opcode::kGpuAcquire: return "gpu_pin";
    case Opcode::kGpuRelease: return "gpu_unpin";
    case Opcode::kCount: break;
  }
  return "unknown";
}

SessionMetrics::SessionMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("kvt_requests_total")
                    .Help("Client requests by operation and status")
                    .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("kvt_request_duration_seconds")
                   .Help("Time from taking a request off the ring to posting its completion")
                   .Register(registry)),
      bad_(prometheus::BuildCounter()
               .Name("kvt_bad_requests_total")
               .Help("Requests refused by validation, by kind")
               .Register(registry)),
      clients_(prometheus::BuildGauge().Name("kvt_clients").Help("Connected clients by tenant").Register(registry)),
      ring_occupancy_(prometheus::BuildGauge()
                          .Name("kvt_ring_occupancy_entries")
                          .Help("Entries waiting in the clients' rings (summed over clients)")
                          .Register(registry)) {
  // 1 us .. ~1 s, doubling.
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 1e-6; b < 2.0; b *= 2) buckets.push_back(b);
  for (size_t i = 0; i < latency_by_op_.size(); ++i) {
    auto op = static_cast<protocol::Opcode>(i);
    latency_by_op_[i] = &latency_.Add({{"op", OpcodeName(op)}}, buckets);
    ok_by_op_[i] = &requests_.Add({{"op", OpcodeName(op)}, {"status", "OK"}});
  }
}

void SessionMetrics::Observe(protocol::Opcode op, StatusCode code, double seconds) {
  auto i = static_cast<size_t>(op);
  if (i >= latency_by_op_.size()) return;
  latency_by_op_[i]->Observe(seconds);
  if (code == StatusCode::kOk) {
    ok_by_op_[i]->Increment();
  } else {
    requests_.Add({{"op", OpcodeName(op)}, {"status", std::string(StatusCodeName(code))}}).Increment();
  }
}

void SessionMetrics::BadRequest(const std::string& kind) {
  bad_.Add({{"kind", kind}}).Increment();
  bad_total_.fetch_add(1, std::memory_order_relaxed);
}

prometheus::Gauge& SessionMetrics::ClientsGauge(const std::string& tenant) {
  return clients_.Add({{"tenant", tenant}});
}

prometheus::Gauge& SessionMetrics::RingOccupancyGauge(const std::string& ring) {
  return ring_occupancy_.Add({{"ring", ring}});
}

uint64_t SessionMetrics::requests(protocol::Opcode op) const {
  auto i = static_cast<size_t>(op);
  return i < ok_by_op_.size() ? static_cast<uint64_t>(ok_by_op_[i]->Value()) : 0;
}

}  // namespace kvt::daemon
