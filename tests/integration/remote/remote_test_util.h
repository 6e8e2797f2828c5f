// Helpers of the remote-tier integration tests: daemons configured for a Redis deployment,
// their metrics, and timed client calls.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/core/client_fixture.h"
#include "tests/integration/monitoring/http_get.h"
#include "tests/integration/remote/redis_servers.h"

namespace kvt::testing {

struct RemoteDaemonOptions {
  std::vector<std::string> endpoints;
  std::string key_prefix = "kvt:";
  std::string extra_yaml;  // more `remote:` keys, each line indented by two spaces
  std::string host_capacity = "64MiB";
  std::vector<std::string> extra_args;  // more kv-tierd flags, after --config
};

// Writes `<dir>/<name>.yaml` with a `remote:` mapping for `o`; returns its path.
inline std::string WriteRemoteConfig(const TempDir& dir, const std::string& name, const RemoteDaemonOptions& o) {
  std::string path = dir.File(name + ".yaml");
  std::ofstream f(path);
  f << "remote:\n  endpoints: [";
  for (size_t i = 0; i < o.endpoints.size(); ++i) f << (i ? ", " : "") << '"' << o.endpoints[i] << '"';
  f << "]\n  key_prefix: \"" << o.key_prefix << "\"\n  timeout_ms: 400\n  connect_timeout_ms: 200\n"
    << "  backoff_min_ms: 50\n  backoff_max_ms: 400\n"
    << o.extra_yaml;
  return path;
}

// kv-tierd options for a daemon with a remote tier and metrics on; the config file lives in `dir`.
inline DaemonOptions RemoteDaemonProcessOptions(const TempDir& dir, const std::string& name,
                                                const RemoteDaemonOptions& o) {
  DaemonOptions d;
  d.metrics = true;
  d.host_capacity = o.host_capacity;
  d.extra_args = {"--config", WriteRemoteConfig(dir, name, o)};
  d.extra_args.insert(d.extra_args.end(), o.extra_args.begin(), o.extra_args.end());
  return d;
}

// A started kv-tierd with a remote tier; nullptr if it did not start.
inline std::unique_ptr<DaemonProcess> StartRemoteDaemon(const TempDir& dir, const std::string& name,
                                                        const RemoteDaemonOptions& o) {
  auto p = std::make_unique<DaemonProcess>(RemoteDaemonProcessOptions(dir, name, o));
  if (!p->Start()) return nullptr;
  return p;
}

// The first line of a redis-cli answer.
inline std::string FirstLineOf(const std::string& s) { return s.substr(0, s.find_first_of("\r\n")); }

// Sum of the samples of `name` whose labels include every `k="v"` in `labels`.
inline double Metric(const DaemonProcess& d, const std::string& name, const std::vector<std::string>& labels = {}) {
  auto r = HttpGet(d.metrics_port(), "/metrics", 3000);
  if (!r.ok()) return -1;
  std::istringstream in(r->body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    if (line.size() > name.size() && line[name.size()] != '{' && line[name.size()] != ' ') continue;
    bool all = true;
    for (const auto& l : labels) all = all && line.find(l) != std::string::npos;
    if (!all) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// Polls `pred` every 50 ms until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// A client with one namespace open.
struct Session {
  kvt::Client client;
  kvt::Namespace ns;
  bool Open(const DaemonProcess& d, const char* tenant = nullptr, const kvt_layout_t& layout = SmallLayout()) {
    return Connect(d.socket_path(), &client, tenant, 64ull << 20) && client.OpenNamespace(layout, &ns);
  }
  uint64_t cb() { return ns.chunk_bytes(); }
  uint64_t tpc() { return ns.tokens_per_chunk(); }
  bool Store(uint64_t seed, uint64_t chunks) {
    auto t = Tokens(seed, chunks * tpc());
    auto kv = Kv(seed, chunks * cb());
    uint64_t stored = 0;
    return static_cast<bool>(ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored));
  }
  uint64_t Lookup(uint64_t seed, uint64_t chunks) {
    auto t = Tokens(seed, chunks * tpc());
    uint64_t matched = 0;
    if (!ns.Lookup(t.data(), t.size(), &matched)) return ~0ull;
    return matched / tpc();
  }
  // Chunks retrieved; *exact says whether they are the bytes stored.
  uint64_t Retrieve(uint64_t seed, uint64_t chunks, bool* exact) {
    auto t = Tokens(seed, chunks * tpc());
    std::vector<char> out(chunks * cb());
    uint64_t got = 0;
    if (!ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got)) return ~0ull;
    uint64_t n = got / tpc();
    auto kv = Kv(seed, chunks * cb());
    *exact = std::memcmp(out.data(), kv.data(), n * cb()) == 0;
    return n;
  }
};

// Runs `fn` and returns its duration.
inline std::chrono::milliseconds Timed(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

}  // namespace kvt::testing
