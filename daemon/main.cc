// kv-tierd — the KV-cache tiering daemon.
//
//   kv-tierd [--config FILE] [--socket PATH] [--metrics-address HOST:PORT] [--host-capacity SIZE]
//            [--data-dir DIR] [--log-level LEVEL] [--gpu-pool-bytes SIZE] [--gpu-device N]
//            [--nvme-* ...] [--remote-* ...]
//
// Runs in the foreground; SIGTERM or SIGINT shut it down cleanly. Exit status: 0 after a clean
// shutdown, 1 for an unusable configuration (with the reason on stderr), 2 for bad flags.
#include <csignal>
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/remote_flags.h"

int main(int argc, char** argv) {
  using kvt::daemon::DaemonConfig;
  CLI::App app{"kv-tierd: KV-cache tiering daemon for LLM inference engines"};
  std::string config_file, socket, metrics, capacity, data_dir, log_level;
  app.add_option("-c,--config", config_file, "YAML configuration file (flags override it)");
  app.add_option("--socket", socket, "Unix socket path of the control plane");
  app.add_option("--metrics-address", metrics, "HOST:PORT for Prometheus metrics ('' or 'off' disables)");
  app.add_option("--host-capacity", capacity, "host tier capacity, e.g. 4GiB or 25%");
  app.add_option("--data-dir", data_dir, "directory for the NVMe tier and state");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  std::string nvme_enabled, nvme_capacity, nvme_segment, nvme_admission, nvme_backend, nvme_staging, nvme_promote;
  uint32_t nvme_flush_ms = 0, nvme_depth = 0;
  app.add_option("--nvme", nvme_enabled, "on|off: the NVMe tier under <data-dir>/nvme (default on)");
  app.add_option("--nvme-capacity", nvme_capacity, "NVMe tier capacity, e.g. 4GiB (default: half the free space, at most 4 GiB)");
  app.add_option("--nvme-segment-size", nvme_segment, "NVMe segment file size (default 64MiB)");
  app.add_option("--nvme-admission", nvme_admission, "all|retrieved: which evicted chunks are written to NVMe");
  app.add_option("--nvme-flush-interval-ms", nvme_flush_ms, "periodic fdatasync of the NVMe tier; 0: only on persist");
  app.add_option("--nvme-queue-depth", nvme_depth, "NVMe I/O queue depth (default 32)");
  app.add_option("--nvme-io-backend", nvme_backend, "auto|io_uring|threadpool");
  app.add_option("--nvme-staging", nvme_staging, "NVMe write-back/read buffer pool (default 64MiB)");
  app.add_option("--nvme-promote", nvme_promote, "on|off: put chunks read from NVMe back into the host tier");
  std::string gpu_pool;
  int gpu_device = 0;
  app.add_option("--gpu-pool-bytes", gpu_pool, "GPU tier pool size, e.g. 8GiB; 0 (default): no GPU tier");
  app.add_option("--gpu-device", gpu_device, "CUDA device ordinal of the GPU pool (default 0)");
  bool gpu_simulated = false;
  app.add_flag("--gpu-pool-simulated", gpu_simulated,
               "tests only: host memory stands in for the GPU pool (it cannot be mapped by clients)");
  kvt::daemon::RemoteFlags remote_flags;
  kvt::daemon::AddRemoteFlags(app, &remote_flags);
  bool print_config = false;
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  CLI11_PARSE(app, argc, argv);

  DaemonConfig config = kvt::daemon::DefaultConfig();
  if (!config_file.empty()) {
    if (auto s = kvt::daemon::LoadConfigFile(config_file, &config); !s.ok()) {
      std::fprintf(stderr, "kv-tierd: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  if (!socket.empty()) config.socket_path = socket;
  if (app.count("--metrics-address")) config.metrics_address = metrics == "off" ? "" : metrics;
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!log_level.empty()) config.log_level = log_level;
  if (!capacity.empty()) {
    auto bytes = kvt::ParseByteSize(capacity);
    if (!bytes.ok()) {
      std::fprintf(stderr, "kv-tierd: --host-capacity: %s\n", bytes.status().ToString().c_str());
      return 1;
    }
    config.host_capacity_bytes = *bytes;
  }
  auto on_off = [](const std::string& v, const char* flag, bool* out) {
    if (v.empty()) return true;
    if (v == "on" || v == "true" || v == "1") *out = true;
    else if (v == "off" || v == "false" || v == "0") *out = false;
    else {
      std::fprintf(stderr, "kv-tierd: %s must be on or off\n", flag);
      return false;
    }
    return true;
  };
  auto bytes_flag = [](const std::string& v, const char* flag, uint64_t* out) {
    if (v.empty()) return true;
    auto bytes = kvt::ParseByteSize(v);
    if (!bytes.ok()) {
      std::fprintf(stderr, "kv-tierd: %s: %s\n", flag, bytes.status().ToString().c_str());
      return false;
    }
    *out = *bytes;
    return true;
  };
  if (!on_off(nvme_enabled, "--nvme", &config.nvme.enabled) ||
      !on_off(nvme_promote, "--nvme-promote", &config.nvme.promote) ||
      !bytes_flag(nvme_capacity, "--nvme-capacity", &config.nvme.capacity_bytes) ||
      !bytes_flag(nvme_segment, "--nvme-segment-size", &config.nvme.segment_bytes) ||
      !bytes_flag(nvme_staging, "--nvme-staging", &config.nvme.staging_bytes) ||
      !bytes_flag(gpu_pool, "--gpu-pool-bytes", &config.gpu_pool_bytes)) {
    return 1;
  }
  if (!nvme_admission.empty()) config.nvme.admission = nvme_admission;
  if (!nvme_backend.empty()) config.nvme.io_backend = nvme_backend;
  if (app.count("--nvme-flush-interval-ms")) config.nvme.flush_interval_ms = nvme_flush_ms;
  if (app.count("--nvme-queue-depth")) config.nvme.queue_depth = nvme_depth;
  if (app.count("--gpu-device")) config.gpu_device = gpu_device;
  if (gpu_simulated) config.gpu_pool_simulated = true;
  if (auto s = kvt::daemon::ApplyRemoteFlags(remote_flags, &config.remote); !s.ok()) {
    std::fprintf(stderr, "kv-tierd: %s\n", s.message().c_str());
    return 1;
  }
  if (print_config) {
    std::printf("socket: %s\nmetrics_address: %s\ndata_dir: %s\nhost_capacity: %llu\n", config.socket_path.c_str(),
                config.metrics_address.c_str(), config.data_dir.c_str(),
                static_cast<unsigned long long>(config.host_capacity_bytes));
    std::printf("gpu_pool_bytes: %llu%s\ngpu_device: %d\n", static_cast<unsigned long long>(config.gpu_pool_bytes),
                config.gpu_pool_bytes == 0 ? " (no GPU tier)" : "", config.gpu_device);
    const auto& r = config.remote;
    std::string endpoints;
    for (const auto& e : r.endpoints) endpoints += (endpoints.empty() ? "" : ",") + e;
    // Never the password: only where it comes from.
    std::printf("remote.endpoints: %s\nremote.user: %s\nremote.password: %s\nremote.password_env: %s\n"
                "remote.key_prefix: %s\nremote.ttl_ms: %llu\nremote.pool_size: %u\nremote.writer_threads: %u\n"
                "remote.connect_timeout_ms: %u\nremote.timeout_ms: %u\nremote.backoff_ms: %u-%u\n"
                "remote.write_queue: %llu\nremote.admission: %s\n",
                endpoints.empty() ? "off" : endpoints.c_str(), r.user.c_str(), r.password.empty() ? "unset" : "set",
                r.password_env.c_str(), r.key_prefix.c_str(), static_cast<unsigned long long>(r.ttl_ms), r.pool_size,
                r.writer_threads, r.connect_timeout_ms, r.timeout_ms, r.backoff_min_ms, r.backoff_max_ms,
                static_cast<unsigned long long>(r.write_queue_bytes), r.admission.c_str());
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  // Block the shutdown signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto daemon = kvt::daemon::Daemon::Create(config);
  if (!daemon.ok()) {
    std::fprintf(stderr, "kv-tierd: %s\n", daemon.status().ToString().c_str());
    return 1;
  }
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == 0) return;
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    (*daemon)->Shutdown();
  });
  (*daemon)->Run();
  // Run returned: either a signal arrived, or something else shut us down. Wake the waiter.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  daemon->reset();
  spdlog::info("kv-tierd stopped");
  return 0;
}
