// kv-tierd — the KV-cache tiering daemon.
//
//   kv-tierd [--config FILE] [--socket PATH] [--metrics-address HOST:PORT] [--host-capacity SIZE]
//            [--data-dir DIR] [--log-level LEVEL]
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
    auto bytes = kvt::daemon::ParseByteSize(capacity);
    if (!bytes.ok()) {
      std::fprintf(stderr, "kv-tierd: --host-capacity: %s\n", bytes.status().ToString().c_str());
      return 1;
    }
    config.host_capacity_bytes = *bytes;
  }
  if (print_config) {
    std::printf("socket: %s\nmetrics_address: %s\ndata_dir: %s\nhost_capacity: %llu\n", config.socket_path.c_str(),
                config.metrics_address.c_str(), config.data_dir.c_str(),
                static_cast<unsigned long long>(config.host_capacity_bytes));
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
