// Real redis-server processes on loopback for the remote-tier tests: single instances and a
// three-shard Redis Cluster created with `redis-cli --cluster create`. Every server started here
// is stopped by its destructor (SIGTERM, then SIGKILL).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace kvt::testing {

// Whether /usr/bin/redis-server and redis-cli can be run.
bool RedisInstalled();

// A loopback port P in [20000, 40000) with P and P+10000 (the cluster bus) both free.
int FreeLoopbackPortForRedis();

class RedisServer {
 public:
  // `cluster`: cluster mode (node timeout 1 s, full coverage not required, so the surviving
  // shards keep serving their slots when one dies).
  RedisServer(int port, bool cluster, std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool Start();  // waits (up to 5 s) for PING
  void Stop();   // SIGTERM and wait
  void Kill();   // SIGKILL and wait
  bool Alive() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  bool cluster_;
  std::vector<std::string> extra_;
  TempDir dir_;
  pid_t pid_ = -1;
};

// redis-cli -p <port> <args...> (bounded to 20 s); stdout, and the exit status in *rc.
std::string RedisCli(int port, const std::vector<std::string>& args, int* rc = nullptr);

class RedisClusterFixture {
 public:
  // Starts `shards` cluster-mode servers and joins them into one cluster with no replicas.
  bool Start(int shards = 3);
  void Stop();
  std::vector<std::string> endpoints() const;
  RedisServer& shard(size_t i) { return *servers_[i]; }
  size_t size() const { return servers_.size(); }
  // Every key under `pattern` on every live shard.
  std::vector<std::string> Keys(const std::string& pattern);
  // The port of the live shard holding `key` (-1 if none).
  int PortOf(const std::string& key);
  // GET/SET of raw bytes on the shard that owns the key.
  bool RawGet(const std::string& key, std::string* value);
  bool RawSet(const std::string& key, const std::string& value);

 private:
  std::vector<std::unique_ptr<RedisServer>> servers_;
};

}  // namespace kvt::testing
