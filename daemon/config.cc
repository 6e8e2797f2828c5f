#include "daemon/config.h"

#include "common/byte_size.h"

#include <grp.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "protocol/default_socket.h"

namespace kvt::daemon {
namespace {


std::string DefaultDataDir() {
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s) return std::string(s) + "/kv-tierd";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/kv-tierd";
  return "/tmp/kv-tierd-" + std::to_string(getuid());
}

// A byte size ("64MiB", "25%") under `key`; a refusal names the file and the key.
Status LoadSize(const YAML::Node& v, const std::string& path, const std::string& key, uint64_t* out) {
  auto parsed = ParseByteSize(v.as<std::string>());
  if (!parsed.ok()) return parsed.status().WithContext("configuration file '" + path + "': " + key);
  *out = *parsed;
  return Status::Ok();
}

// File permissions as an octal string ("0660"): all of it octal digits, at most 0777.
Status LoadMode(const YAML::Node& v, const std::string& path, uint32_t* out) {
  const std::string text = v.as<std::string>();
  uint32_t mode = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || mode > 0777) {
    return InvalidArgument("configuration file '" + path + "': socket_mode '" + text +
                           "' is not an octal mode from 0 to 0777 (write it as a string: \"0660\")");
  }
  *out = mode;
  return Status::Ok();
}

Status LoadNvmeConfig(const YAML::Node& node, const std::string& path, NvmeConfig* n) {
  if (!node.IsMap()) return InvalidArgument("configuration file '" + path + "': nvme must be a mapping");
  static const std::set<std::string> kKnown = {"enabled", "capacity", "segment_size", "admission",
                                               "flush_interval_ms", "queue_depth", "io_backend", "promote",
                                               "staging"};
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (!kKnown.count(key)) return InvalidArgument("configuration file '" + path + "': unknown key 'nvme." + key + "'");
    auto size = [&](uint64_t* out) { return LoadSize(v, path, "nvme." + key, out); };
    if (key == "enabled") n->enabled = v.as<bool>();
    else if (key == "capacity") KVT_RETURN_IF_ERROR(size(&n->capacity_bytes));
    else if (key == "segment_size") KVT_RETURN_IF_ERROR(size(&n->segment_bytes));
    else if (key == "admission") n->admission = v.as<std::string>();
    else if (key == "flush_interval_ms") n->flush_interval_ms = v.as<uint32_t>();
    else if (key == "queue_depth") n->queue_depth = v.as<uint32_t>();
    else if (key == "io_backend") n->io_backend = v.as<std::string>();
    else if (key == "promote") n->promote = v.as<bool>();
    else if (key == "staging") KVT_RETURN_IF_ERROR(size(&n->staging_bytes));
  }
  return Status::Ok();
}

Status LoadRemoteConfig(const YAML::Node& node, const std::string& path, RemoteConfig* r) {
  if (!node.IsMap()) return InvalidArgument("configuration file '" + path + "': remote must be a mapping");
  static const std::set<std::string> kKnown = {
      "endpoints",  "user",           "password",       "password_env",   "key_prefix", "ttl_ms",
      "pool_size",  "writer_threads", "connect_timeout_ms", "timeout_ms", "backoff_min_ms", "backoff_max_ms",
      "write_queue", "admission",     "admit_leading_chunks"};
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (!kKnown.count(key)) return InvalidArgument("configuration file '" + path + "': unknown key 'remote." + key + "'");
    if (key == "endpoints") {
      r->endpoints = v.IsSequence() ? v.as<std::vector<std::string>>() : std::vector<std::string>{v.as<std::string>()};
    } else if (key == "user") r->user = v.as<std::string>();
    else if (key == "password") r->password = v.as<std::string>();
    else if (key == "password_env") r->password_env = v.as<std::string>();
    else if (key == "key_prefix") r->key_prefix = v.as<std::string>();
    else if (key == "ttl_ms") r->ttl_ms = v.as<uint64_t>();
    else if (key == "pool_size") r->pool_size = v.as<uint32_t>();
    else if (key == "writer_threads") r->writer_threads = v.as<uint32_t>();
    else if (key == "connect_timeout_ms") r->connect_timeout_ms = v.as<uint32_t>();
    else if (key == "timeout_ms") r->timeout_ms = v.as<uint32_t>();
    else if (key == "backoff_min_ms") r->backoff_min_ms = v.as<uint32_t>();
    else if (key == "backoff_max_ms") r->backoff_max_ms = v.as<uint32_t>();
    else if (key == "write_queue") KVT_RETURN_IF_ERROR(LoadSize(v, path, "remote.write_queue", &r->write_queue_bytes));
    else if (key == "admission") r->admission = v.as<std::string>();
    else if (key == "admit_leading_chunks") r->admit_leading_chunks = v.as<uint64_t>();
  }
  return Status::Ok();
}

// The gid of a group name (getgrnam_r: /etc/group, NSS).
StatusOr<uint32_t> GroupId(const std::string& name) {
  std::vector<char> buf(16384);
  group g{};
  group* found = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
  if (rc != 0) return ErrnoStatus("getgrnam_r(" + name + ")", rc);
  if (!found) return InvalidArgument("no group named '" + name + "'");
  return static_cast<uint32_t>(found->gr_gid);
}

}  // namespace

Status CheckRemoteEndpoint(const std::string& e) {
  size_t colon = e.rfind(':');
  if (colon == std::string::npos || colon == 0) return InvalidArgument("remote endpoint '" + e + "' is not HOST:PORT");
  uint32_t port = 0;
  std::string digits = e.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) {
    return InvalidArgument("remote endpoint '" + e + "': port must be 1-65535");
  }
  return Status::Ok();
}

std::string DefaultSocketPath() { return protocol::DefaultSocketPath(); }

DaemonConfig DefaultConfig() {
  DaemonConfig c;
  c.socket_path = DefaultSocketPath();
  c.metrics_address = "127.0.0.1:9464";
  c.data_dir = DefaultDataDir();
  // An eighth of the machine's memory, between 256 MiB and 64 GiB: room for the engine and the OS.
  c.host_capacity_bytes = std::clamp<uint64_t>(PhysicalMemoryBytes() / 8, 256ull << 20, 64ull << 30);
  return c;
}


Status LoadConfigFile(const std::string& path, DaemonConfig* c) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return NotFound("cannot read configuration file '" + path + "'");
  } catch (const YAML::Exception& e) {
    return InvalidArgument("configuration file '" + path + "': " + e.what());
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return InvalidArgument("configuration file '" + path + "' must be a mapping");
  static const std::set<std::string> kKnown = {
      "socket", "socket_mode", "metrics_address", "data_dir", "host_capacity", "lock_memory",
      "numa_node", "eviction_policy", "default_heap", "max_heap", "total_heap", "default_ring_entries",
      "max_ring_entries", "max_clients", "idle_spin_us", "handshake_timeout_ms", "allowed_uids",
      "allowed_gids", "allowed_groups", "log_level", "nvme", "remote", "gpu_pool", "gpu_device"};
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (!kKnown.count(key)) return InvalidArgument("configuration file '" + path + "': unknown key '" + key + "'");
      auto size = [&](uint64_t* out) { return LoadSize(v, path, key, out); };
      if (key == "socket") c->socket_path = v.as<std::string>();
      else if (key == "socket_mode") KVT_RETURN_IF_ERROR(LoadMode(v, path, &c->socket_mode));
      else if (key == "metrics_address") c->metrics_address = v.as<std::string>();
      else if (key == "data_dir") c->data_dir = v.as<std::string>();
      else if (key == "host_capacity") KVT_RETURN_IF_ERROR(size(&c->host_capacity_bytes));
      else if (key == "lock_memory") c->lock_memory = v.as<bool>();
      else if (key == "numa_node") c->numa_node = v.as<int>();
      else if (key == "eviction_policy") c->eviction_policy = v.as<std::string>();
      else if (key == "gpu_pool") KVT_RETURN_IF_ERROR(size(&c->gpu_pool_bytes));
      else if (key == "gpu_device") c->gpu_device = v.as<int>();
      else if (key == "default_heap") KVT_RETURN_IF_ERROR(size(&c->default_heap_bytes));
      else if (key == "max_heap") KVT_RETURN_IF_ERROR(size(&c->max_heap_bytes));
      else if (key == "total_heap") KVT_RETURN_IF_ERROR(size(&c->total_heap_bytes));
      else if (key == "default_ring_entries") c->default_ring_entries = v.as<uint32_t>();
      else if (key == "max_ring_entries") c->max_ring_entries = v.as<uint32_t>();
      else if (key == "max_clients") c->max_clients = v.as<uint32_t>();
      else if (key == "idle_spin_us") c->idle_spin_us = v.as<uint32_t>();
      else if (key == "handshake_timeout_ms") c->handshake_timeout_ms = v.as<int64_t>();
      else if (key == "allowed_uids") c->allowed_uids = v.as<std::vector<uint32_t>>();
      else if (key == "allowed_gids") {
        for (uint32_t gid : v.as<std::vector<uint32_t>>()) c->allowed_gids.push_back(gid);
      } else if (key == "allowed_groups") {
        for (const std::string& name : v.as<std::vector<std::string>>()) {
          auto gid = GroupId(name);
          if (!gid.ok()) return gid.status().WithContext("configuration file '" + path + "': allowed_groups");
          c->allowed_gids.push_back(*gid);
        }
      }
      else if (key == "log_level") c->log_level = v.as<std::string>();
      else if (key == "nvme") KVT_RETURN_IF_ERROR(LoadNvmeConfig(v, path, &c->nvme));
      else if (key == "remote") KVT_RETURN_IF_ERROR(LoadRemoteConfig(v, path, &c->remote));
    }
  } catch (const std::exception& e) {
    return InvalidArgument("configuration file '" + path + "': bad value: " + e.what());
  }
  return Status::Ok();
}

Status ValidateConfig(const DaemonConfig& c) {
  namespace fs = std::filesystem;
  auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (c.host_capacity_bytes < (16ull << 20)) {
    return InvalidArgument("host capacity must be at least 16 MiB (got " + std::to_string(c.host_capacity_bytes) + " bytes)");
  }
  if (c.host_capacity_bytes > PhysicalMemoryBytes()) {
    return InvalidArgument("host capacity " + std::to_string(c.host_capacity_bytes >> 20) +
                           " MiB exceeds physical memory (" + std::to_string(PhysicalMemoryBytes() >> 20) + " MiB)");
  }
  if (!pow2(c.default_ring_entries) || !pow2(c.max_ring_entries) || c.default_ring_entries > c.max_ring_entries ||
      c.max_ring_entries > 65536) {
    return InvalidArgument("ring entries must be powers of two, default <= max <= 65536");
  }
  if (c.default_heap_bytes < (1ull << 20) || c.default_heap_bytes > c.max_heap_bytes ||
      c.max_heap_bytes > c.total_heap_bytes) {
    return InvalidArgument("heap sizes must satisfy 1 MiB <= default_heap <= max_heap <= total_heap");
  }
  if (c.max_clients == 0) return InvalidArgument("max_clients must be positive");
  if (c.socket_path.empty() || c.socket_path.size() >= 108) {
    return InvalidArgument("socket path must be 1-107 bytes (a Unix socket limit): '" + c.socket_path + "'");
  }
  fs::path socket_dir = fs::path(c.socket_path).parent_path();
  if (!socket_dir.empty() && !fs::is_directory(socket_dir)) {
    return InvalidArgument("socket directory '" + socket_dir.string() + "' does not exist");
  }
  std::error_code ec;
  fs::create_directories(c.data_dir, ec);
  if (ec) return PermissionDenied("cannot create data directory '" + c.data_dir + "': " + ec.message());
  if (::access(c.data_dir.c_str(), W_OK | X_OK) != 0) {
    return PermissionDenied("data directory '" + c.data_dir + "' is not writable");
  }
  const NvmeConfig& n = c.nvme;
  if (n.admission != "all" && n.admission != "retrieved") {
    return InvalidArgument("nvme.admission must be 'all' or 'retrieved', not '" + n.admission + "'");
  }
  if (n.io_backend != "auto" && n.io_backend != "io_uring" && n.io_backend != "threadpool") {
    return InvalidArgument("nvme.io_backend must be auto, io_uring or threadpool, not '" + n.io_backend + "'");
  }
  if (n.queue_depth == 0 || n.queue_depth > 4096) return InvalidArgument("nvme.queue_depth must be 1-4096");
  if (n.segment_bytes < (1ull << 20) || n.segment_bytes > (4ull << 30)) {
    return InvalidArgument("nvme.segment_size must be between 1 MiB and 4 GiB");
  }
  if (n.staging_bytes < (1ull << 20)) return InvalidArgument("nvme.staging must be at least 1 MiB");
  if (n.capacity_bytes != 0 && n.capacity_bytes < (3ull << 20)) {
    return InvalidArgument("nvme.capacity must be at least 3 MiB (three 1 MiB segments)");
  }
  const RemoteConfig& r = c.remote;
  if (r.admission != "all" && r.admission != "leading" && r.admission != "none") {
    return InvalidArgument("remote.admission must be all, leading or none, not '" + r.admission + "'");
  }
  if (r.pool_size == 0 || r.pool_size > 256) return InvalidArgument("remote.pool_size must be 1-256");
  if (r.writer_threads == 0 || r.writer_threads > 64) return InvalidArgument("remote.writer_threads must be 1-64");
  if (r.timeout_ms == 0 || r.connect_timeout_ms == 0) return InvalidArgument("remote timeouts must be positive");
  if (r.backoff_min_ms == 0 || r.backoff_min_ms > r.backoff_max_ms) {
    return InvalidArgument("remote back-off must satisfy 0 < backoff_min_ms <= backoff_max_ms");
  }
  for (const std::string& e : r.endpoints) KVT_RETURN_IF_ERROR(CheckRemoteEndpoint(e));
  if (c.gpu_device < 0) return InvalidArgument("gpu_device must be a CUDA device ordinal (0 or more)");
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (!kLevels.count(c.log_level)) return InvalidArgument("log_level must be one of trace|debug|info|warn|error|off");
  return Status::Ok();
}

}  // namespace kvt::daemon
