// Daemon — kv-tierd assembled: host tier, block store and plane, metrics exposer, control server.
//
// Create() validates everything that can be wrong with a configuration before anything starts
// (capacity, directories, socket in use, metrics address), so an unusable configuration ends in
// a message and a non-zero exit, not a half-started daemon.
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>

#include "common/status_or.h"
#include "daemon/config.h"
#include "daemon/gpu_wiring.h"
#include "daemon/namespace_registry.h"
#include "daemon/sequence_metrics.h"
#include "daemon/server.h"
#include "daemon/session_metrics.h"
#include "host/host_tier.h"
#include "monitoring/process_metrics.h"
#include "host/nvme/nvme_tier.h"
#include "tiering/block_plane.h"
#include "tiering/block_store.h"

namespace kvt::daemon {

class Daemon {
 public:
  static StatusOr<std::unique_ptr<Daemon>> Create(const DaemonConfig& config);
  ~Daemon();

  // Serves until Shutdown() (from a signal handler thread or any other).
  void Run();
  void Shutdown();

  protocol::DaemonStats Stats() const;

 private:
  Daemon() = default;
  // Starts the NVMe tier under <data_dir>/nvme; a failure is a warning (the daemon runs without it).
  void StartNvmeTier();

  DaemonConfig config_;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<monitoring::ProcessMetrics> process_metrics_;  // kvt_process_*
  std::shared_ptr<SequenceMetrics> sequence_metrics_;            // what clients report of their sequences
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<host::HostTier> host_;
  std::unique_ptr<tiering::BlockStore> store_;
  std::unique_ptr<nvme::NvmeTier> nvme_;  // null without an NVMe tier; declared after store_: goes first
  std::unique_ptr<tiering::BlockPlane> plane_;
  GpuTierParts gpu_;  // the GPU tier, or null parts; declared after store_ and plane_: goes first
  std::unique_ptr<tiering::PrefixTier> remote_;  // the remote tier, when configured and built
  std::unique_ptr<SessionMetrics> session_metrics_;
  std::unique_ptr<NamespaceRegistry> namespaces_;
  std::unique_ptr<Server> server_;
};

}  // namespace kvt::daemon
