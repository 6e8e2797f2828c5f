#include "daemon/daemon.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

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
  if (config.nvme.enabled) d->StartNvmeTier();
  d->plane_ = std::make_unique<tiering::BlockPlane>(d->store_.get());
  d->gpu_ = MakeGpuTier(config, d->store_.get(), *d->registry_);
  if (d->gpu_.tier) d->plane_->set_gpu_tier(d->gpu_.tier.get());
  KVT_ASSIGN_OR_RETURN(d->remote_, MakeRemoteTier(config.remote, *d->registry_));
  if (d->remote_) d->plane_->set_prefix_tier(d->remote_.get());
  d->session_metrics_ = std::make_unique<SessionMetrics>(*d->registry_);
  d->namespaces_ = std::make_unique<NamespaceRegistry>();
  d->sequence_metrics_ = std::make_shared<SequenceMetrics>();

  SessionServices services;
  services.block_plane = d->plane_.get();
  services.block_store = d->store_.get();
  services.metrics = d->session_metrics_.get();
  services.sequence_metrics = d->sequence_metrics_.get();
  services.namespaces = d->namespaces_.get();
  services.daemon_uid = ::geteuid();
  services.idle_spin_us = config.idle_spin_us;
  services.numa_node = d->host_->numa_node();
  if (d->gpu_.exported) services.gpu_pool = d->gpu_.info;
  Daemon* self = d.get();
  services.stats = [self] { return self->Stats(); };
  if (d->nvme_) {
    services.persist = [self](Deadline deadline) { return self->nvme_->Persist(&self->store_->index(), deadline); };
  }
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
    d->exposer_->RegisterCollectable(d->sequence_metrics_);
  }
  spdlog::info("kv-tierd ready: socket {} | metrics {} | host tier {} MiB ({}) | gpu tier {} | data dir {}",
               config.socket_path, config.metrics_address.empty() ? "off" : "http://" + config.metrics_address + "/metrics",
               config.host_capacity_bytes >> 20, d->host_->memory_locked() ? "locked" : "not locked",
               d->gpu_.tier ? std::to_string(config.gpu_pool_bytes >> 20) + " MiB" : std::string("off"),
               config.data_dir);
  return d;
}

Daemon::~Daemon() {
  server_.reset();  // stops sessions before the store they use goes away
  if (plane_) {
    plane_->set_prefix_tier(nullptr);
    plane_->set_gpu_tier(nullptr);
  }
  gpu_.tier.reset();  // the tier, then the pool it copies into
  gpu_.memory.reset();
  remote_.reset();  // drains write-behind (bounded) while the host slots it holds still exist
  if (store_) {
    store_->set_lower_tier(nullptr);
    store_->set_eviction_sink(nullptr);
  }
  nvme_.reset();  // drains queued write-back and syncs it
}

void Daemon::StartNvmeTier() {
  namespace fs = std::filesystem;
  const NvmeConfig& c = config_.nvme;
  nvme::NvmeTierOptions o;
  o.dir = config_.data_dir + "/nvme";
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec) {
    spdlog::warn("nvme tier off: cannot create {}: {}", o.dir, ec.message());
    return;
  }
  o.capacity_bytes = c.capacity_bytes;
  if (o.capacity_bytes == 0) {
    struct statvfs vfs;
    uint64_t free_bytes = ::statvfs(o.dir.c_str(), &vfs) == 0 ? uint64_t{vfs.f_bavail} * vfs.f_frsize : 0;
    o.capacity_bytes = std::min<uint64_t>(4ull << 30, free_bytes / 2);
  }
  o.segment_bytes = c.segment_bytes;
  if (o.capacity_bytes / o.segment_bytes < 4) {
    o.segment_bytes = std::max<uint64_t>(1ull << 20, (o.capacity_bytes / 4) & ~((1ull << 20) - 1));
  }
  o.admission = c.admission == "retrieved" ? nvme::Admission::kRetrieved : nvme::Admission::kAll;
  o.promote_on_hit = c.promote;
  o.flush_interval_ms = c.flush_interval_ms;
  o.queue_depth = c.queue_depth;
  o.backend = c.io_backend == "io_uring"     ? nvme::IoBackend::kIoUring
              : c.io_backend == "threadpool" ? nvme::IoBackend::kThreadPool
                                             : nvme::IoBackend::kAuto;
  o.staging_bytes = c.staging_bytes;
  o.host_arena = {host_->base(), host_->capacity_bytes()};
  auto tier = nvme::NvmeTier::Create(o, *registry_);
  if (!tier.ok()) {
    spdlog::warn("nvme tier off: {}", tier.status().ToString());
    return;
  }
  nvme_ = std::move(*tier);
  nvme::NvmeTier* t = nvme_.get();
  store_->set_lower_tier(t);
  store_->set_eviction_sink([t](const tiering::ChunkIndex::EntryPtr& e, tiering::EvictionReason) { t->Demote(e); });
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
  if (nvme_) {
    auto n = nvme_->counters();
    s.nvme_capacity_bytes = n.enabled ? n.capacity_bytes : 0;
    s.nvme_used_bytes = n.used_bytes;
    s.nvme_chunks = n.chunks;
  }
  if (gpu_.tier) {
    auto g = gpu_.tier->counters();
    s.gpu_capacity_bytes = g.capacity_bytes;
    s.gpu_used_bytes = g.used_bytes;
    s.gpu_chunks = g.chunks;
    s.gpu_pinned_chunks = g.pinned_chunks;
  }
  const SequenceFigures seq = sequence_metrics_->Totals();
  s.sequences = seq.sequences;
  s.sequence_host_tier_heap_bytes = seq.host_tier_heap_bytes;
  for (int p = 0; p < protocol::kSequencePolicies; ++p) {
    const SequenceFigures::Policy& f = seq.policy[p];
    s.policy_bytes[p] = f.bytes;
    s.policy_layer_tokens[p] = f.layer_tokens;
    s.fetch_steps += f.steps();
    s.fetch_bytes += f.fetch_bytes;
    s.transfer_hidden_ns += f.hidden_ns;
    s.transfer_exposed_ns += f.exposed_ns;
  }
  return s;
}

}  // namespace kvt::daemon
