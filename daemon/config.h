// DaemonConfig — everything kv-tierd can be told, with defaults that work for an ordinary user
// and no file: socket under $XDG_RUNTIME_DIR (or /tmp), host arena sized from the machine, data
// directory under $XDG_STATE_HOME (or ~/.local/state, or /tmp).
//
// Precedence: embedded defaults < YAML file (--config) < command-line flags.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/byte_size.h"  // ParseByteSize, PhysicalMemoryBytes
#include "common/status_or.h"

namespace kvt::daemon {

// The NVMe tier (host/nvme/nvme_tier.h), under <data_dir>/nvme. YAML: a `nvme:` mapping.
struct NvmeConfig {
  bool enabled = true;                  // `enabled`; the daemon carries on without it if it cannot start
  uint64_t capacity_bytes = 0;          // `capacity`; 0: half the free space of the file system, at most 4 GiB
  uint64_t segment_bytes = 64ull << 20; // `segment_size`; shrunk to capacity/4 for small capacities
  std::string admission = "all";        // `admission`: all | retrieved (chunks retrieved at least once)
  uint32_t flush_interval_ms = 1000;    // `flush_interval_ms`: periodic fdatasync; 0: only on kvt_persist
  uint32_t queue_depth = 32;            // `queue_depth`
  std::string io_backend = "auto";      // `io_backend`: auto | io_uring | threadpool
  bool promote = true;                  // `promote`: a chunk read from NVMe goes back into the host tier
  uint64_t staging_bytes = 64ull << 20; // `staging`: write-back and read buffers (registered with io_uring)
};

// The remote tier (host/remote/remote_tier.h). YAML: a `remote:` mapping; off while `endpoints`
// is empty. The password comes from `password`, or from the environment variable named by
// `password_env` (default KVT_REMOTE_PASSWORD) when `password` is not set; it is never logged.
struct RemoteConfig {
  std::vector<std::string> endpoints;   // `endpoints`: HOST:PORT seeds (cluster nodes or one instance)
  std::string user;                     // `user`: ACL user
  std::string password;                 // `password`
  std::string password_env = "KVT_REMOTE_PASSWORD";  // `password_env`
  std::string key_prefix = "kvt:";      // `key_prefix`
  uint64_t ttl_ms = 0;                  // `ttl_ms`: expiry of written chunks; 0: none
  uint32_t pool_size = 4;               // `pool_size`: connections per Redis node
  uint32_t writer_threads = 1;          // `writer_threads`
  uint32_t connect_timeout_ms = 500;    // `connect_timeout_ms`
  uint32_t timeout_ms = 1000;           // `timeout_ms`: bound on one lookup / retrieve / write batch
  uint32_t backoff_min_ms = 50;         // `backoff_min_ms`, `backoff_max_ms`: reconnection back-off
  uint32_t backoff_max_ms = 2000;
  uint64_t write_queue_bytes = 256ull << 20;  // `write_queue`: write-behind bytes held
  std::string admission = "all";        // `admission`: all | leading | none
  uint64_t admit_leading_chunks = 64;   // `admit_leading_chunks` (admission: leading)
};

struct DaemonConfig {
  std::string socket_path;          // Unix socket of the control plane
  uint32_t socket_mode = 0660;      // permissions of the socket file
  std::string metrics_address;      // HOST:PORT of the Prometheus exposer; "" disables it
  std::string data_dir;             // for the NVMe tier and state
  uint64_t host_capacity_bytes = 0; // the host tier's hard limit
  bool lock_memory = true;
  int numa_node = -1;
  std::string eviction_policy = "lru";
  // The GPU tier: one pool of device memory shared with clients through CUDA IPC. 0: no GPU tier.
  // The daemon runs without it (and says so) when CUDA, a driver or the device is missing.
  uint64_t gpu_pool_bytes = 0;      // YAML `gpu_pool`, flag --gpu-pool-bytes
  int gpu_device = 0;               // YAML `gpu_device`, flag --gpu-device: the CUDA ordinal
  // For tests on machines without a GPU (flag --gpu-pool-simulated): host memory stands in for
  // the device pool, so the GPU tier's placement, pinning and eviction run through the real
  // daemon; the pool cannot be mapped (kGpuPoolInfo answers UNSUPPORTED). Never for production.
  bool gpu_pool_simulated = false;

  uint64_t default_heap_bytes = 64ull << 20;   // per-client shared heap when the client asks 0
  uint64_t max_heap_bytes = 4ull << 30;        // the most one client may ask for
  uint64_t total_heap_bytes = 16ull << 30;     // all clients' heaps together
  uint32_t default_ring_entries = 256;
  uint32_t max_ring_entries = 4096;
  uint32_t max_clients = 256;
  uint32_t idle_spin_us = 50;                  // how long a session polls its ring before sleeping
  int64_t handshake_timeout_ms = 5000;
  std::vector<uint32_t> allowed_uids;          // besides root and the daemon's own uid
  std::vector<uint32_t> allowed_gids;          // peers in one of these groups (primary or
                                               // supplementary) may connect
  // YAML `allowed_groups: [kvtier]`: group names, resolved to gids (appended to allowed_gids)
  // when the file is read; an unknown name is an error.
  std::string log_level = "info";
  NvmeConfig nvme;
  RemoteConfig remote;
};

// The embedded defaults for this machine and user.
DaemonConfig DefaultConfig();

// Applies a YAML file on top of `config`. Unknown keys are an error (a typo must not pass silently).
Status LoadConfigFile(const std::string& path, DaemonConfig* config);

// Checks ranges and that paths are usable (the data directory is created if missing and must be
// writable; the socket's directory must exist).
Status ValidateConfig(const DaemonConfig& config);

// "HOST:PORT" with a non-empty host and a port in 1-65535 (a remote tier endpoint).
Status CheckRemoteEndpoint(const std::string& endpoint);

// The default socket path for this user (also what the client library falls back to).
std::string DefaultSocketPath();

}  // namespace kvt::daemon
