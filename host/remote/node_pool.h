// NodePool — the connections to one Redis node: at most `pool_size` open at once, borrowed by one
// thread at a time, reconnected on demand with exponential back-off after a failure.
//
// While a node is backing off, Acquire fails at once (the caller turns that into misses), so a
// dead shard costs nothing per request beyond a clock read; the first Acquire after the back-off
// tries one connect, bounded by the connect timeout.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/deadline.h"
#include "common/status_or.h"
#include "host/remote/redis_connection.h"

namespace kvt::remote {

struct NodePoolOptions {
  uint32_t pool_size = 4;
  uint32_t backoff_min_ms = 50;
  uint32_t backoff_max_ms = 2000;
  ConnectionOptions connection;
};

// Told of connection events (for metrics): a connect that failed, a connect that succeeded after
// an earlier failure or loss (a reconnect).
struct NodePoolEvents {
  std::function<void()> connect_failed;
  std::function<void()> reconnected;
};

class NodePool {
 public:
  NodePool(Endpoint endpoint, NodePoolOptions options, NodePoolEvents events);
  ~NodePool();

  // A connection, idle or newly opened; the caller gives it back with Release. `fresh` forces a
  // new connection (a retry after a reset one). With `wait` false, BUSY at once when every
  // connection is lent (an extra connection for a split pipeline is a nicety, not a need).
  StatusOr<std::unique_ptr<RedisConnection>> Acquire(Deadline deadline, bool fresh = false, bool wait = true);
  // Returns a connection; a broken one is closed, and counts as a lost connection.
  void Release(std::unique_ptr<RedisConnection> connection);
  // Drops idle connections and starts a back-off (the node failed in a way that suggests it is gone).
  void MarkDown();

  bool backing_off() const;
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  void StartBackoffLocked();

  const Endpoint endpoint_;
  const NodePoolOptions options_;
  const NodePoolEvents events_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
  uint32_t open_ = 0;  // idle + lent + being opened
  bool lost_ = false;  // a connection failed since the last successful connect
  std::chrono::milliseconds backoff_{0};
  Clock::time_point retry_at_{};
};

}  // namespace kvt::remote
