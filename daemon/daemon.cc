#include "daemon/daemon.h"

#include <unistd.h>

#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include "daemon/remote_wiring.h"
#include "monitoring/process_metrics.h"
#include "protocol/version.h"

namespace kvt::daemon {

StatusOr<std::unique_ptr<Daemon>> Daemon::Create(const DaemonConfig& config) {
  KVT_RETURN_IF_ERROR(ValidateConfig(config));
  std::unique_ptr<Daemon> d(new Daemon());
  d->config_ = config;
  d->started_ = std::chrono::steady_clock::now();
  d->registry_ = std::make_shared<prometheus::Registry>();

  prometheus::BuildGauge()
      .Name("kvt_build_info")
      .Help("kv-tierd version and protocol")
      .Register(*d->registry_)
      .Add({{"version", "0.1.0"}, {"protocol", std::to_string(protocol::kProtocolMajor) + "." +
                                                   std::to_string(protocol::kProtocolMinor)}})
      .Set(1);

  host::HostTierOptions host_options;
  host_options.capacity_bytes = config.host_capacity_bytes;
  host_options.lock_memory = config.lock_memory;
  host_options.numa_node = config.numa_node;
  KVT_ASSIGN_OR_RETURN(d->host_, host::HostTier::Create(host_options));
  KVT_ASSIGN_OR_RETURN(auto policy, tiering::MakeEvictionPolicy(config.eviction_policy));
  d->store_ = std::make_unique<tiering::BlockStore>(d->host_.get(), std::move(policy), *d->registry_);
  d->plane_ = std::make_unique<tiering::BlockPlane>(d->store_.get());
  KVT_ASSIGN_OR_RETURN(d->remote_, MakeRemoteTier(config.remote, *d->registry_));
  if (d->remote_) d->plane_->set_prefix_tier(d->remote_.get());
  d->session_metrics_ = std::make_unique<SessionMetrics>(*d->registry_);
  d->namespaces_ = std::make_unique<NamespaceRegistry>();

  SessionServices services;
  services.block_plane = d->plane_.get();
  services.block_store = d->store_.get();
  services.metrics = d->session_metrics_.get();
  services.namespaces = d->namespaces_.get();
  services.daemon_uid = ::geteuid();
  services.idle_spin_us = config.idle_spin_us;
  Daemon* self = d.get();
  services.stats = [self] { return self->Stats(); };
  d->server_ = std::make_unique<Server>(config, services);
  KVT_RETURN_IF_ERROR(d->server_->Listen());

  if (!config.metrics_address.empty()) {
    try {
      d->exposer_ = std::make_unique<prometheus::Exposer>(config.metrics_address);
    } catch (const std::exception& e) {
      return InvalidArgument("cannot serve metrics on '" + config.metrics_address + "': " + e.what());
    }
    d->exposer_->RegisterCollectable(d->registry_);
    d->process_metrics_ = std::make_shared<monitoring::ProcessMetrics>();
    d->exposer_->RegisterCollectable(d->process_metrics_);
  }
  spdlog::info("kv-tierd ready: socket {} | metrics {} | host tier {} MiB ({}) | data dir {}", config.socket_path,
               config.metrics_address.empty() ? "off" : "http://" + config.metrics_address + "/metrics",
               config.host_capacity_bytes >> 20, d->host_->memory_locked() ? "locked" : "not locked", config.data_dir);
  return d;
}

Daemon::~Daemon() {
  server_.reset();  // stops sessions before the store they use goes away
  if (plane_) plane_->set_prefix_tier(nullptr);
  remote_.reset();  // drains write-behind (bounded) while the host slots it holds still exist
}

void Daemon::Run() { server_->Run(); }

void Daemon::Shutdown() { server_->Shutdown(); }

protocol::DaemonStats Daemon::Stats() const {
  protocol::DaemonStats s{};
  s.protocol_version = protocol::kProtocolVersion;
  s.uptime_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started_).count());
  s.clients = server_ ? server_->session_count() : 0;
  auto c = store_->counters();
  s.host_capacity_bytes = c.capacity_bytes;
  s.host_used_bytes = c.used_bytes;
  s.host_chunks = c.chunks;
  s.pinned_chunks = c.pinned_chunks;
  s.hits = c.hits;
  s.misses = c.misses;
  s.evictions = c.evictions;
  s.stores = session_metrics_->requests(protocol::Opcode::kStore);
  s.lookups = session_metrics_->requests(protocol::Opcode::kLookup);
  s.retrieves = session_metrics_->requests(protocol::Opcode::kRetrieve);
  s.bad_requests = session_metrics_->bad_requests();
  return s;
}

}  // namespace kvt::daemon
