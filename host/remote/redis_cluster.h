// RedisCluster — routes pipelined commands to a Redis Cluster or a single instance.
//
// Topology: at start-up, and whenever asked (a MOVED reply, a failed node), a background thread
// sends CLUSTER SLOTS to the seeds and known nodes, builds the slot -> master map, and swaps it in
// atomically; an instance with cluster support disabled is a single node owning every slot. Until
// a topology is known (Redis unreachable at start-up) every command fails at once, and the thread
// keeps trying with back-off.
//
// Execute: commands are grouped by the node owning their routing key's slot (key_slot.h); each
// group goes out as one pipeline on a connection borrowed from that node's pool, every group is
// sent before any reply is read, so a batch over all shards costs one round trip. MOVED updates
// the slot and re-sends the command in a second round (bounded by max_redirects), ASK re-sends it
// once to the named node prefixed by ASKING, TRYAGAIN retries; a connection reset on a reused
// connection is retried once on a fresh one; a timeout marks the node down (its pool backs off),
// so a slow shard costs one timeout, not one per request.
//
// Thread-safe; Execute may be called from many threads at once.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/deadline.h"
#include "common/status_or.h"
#include "host/remote/key_slot.h"
#include "host/remote/node_pool.h"
#include "host/remote/redis_command.h"

namespace kvt::remote {

struct ClusterOptions {
  std::vector<Endpoint> seeds;
  NodePoolOptions pool;
  uint32_t max_redirects = 3;
  uint32_t op_timeout_ms = 1000;
  // A node's share of a batch larger than this is spread over idle pooled connections, about
  // this much each; 0: never (one pipeline per node and batch).
  uint64_t split_bytes = 1ull << 20;
};

// What one Execute met, for the caller's metrics.
struct ExecuteStats {
  uint32_t failed_nodes = 0;  // node groups that failed (connect, reset, timeout)
  uint32_t moved = 0;
  uint32_t ask = 0;
};

struct ClusterEvents {
  NodePoolEvents pool;
  std::function<void(const Status&)> topology_failed;  // a refresh found no usable node
  std::function<void(bool cluster, size_t nodes)> topology_read;  // a refresh succeeded
};

class RedisCluster {
 public:
  // Fails only on unusable options; an unreachable deployment is found later.
  static StatusOr<std::unique_ptr<RedisCluster>> Create(ClusterOptions options, ClusterEvents events);
  ~RedisCluster();

  std::vector<StatusOr<Reply>> Execute(std::span<const RedisCommand> commands, Deadline deadline,
                                            ExecuteStats* stats = nullptr);

  bool ready() const;
  bool is_cluster() const;
  size_t node_count() const;
  // Waits until a topology is known (tests, benchmarks).
  bool WaitReady(Deadline deadline);
  // Waits for the end of the first topology read: OK once a topology is known, the reason the
  // first read failed (PERMISSION_DENIED for refused credentials, whichever seed refused them),
  // TIMEOUT if it has not ended by the deadline. Start-up uses it to refuse bad credentials.
  Status WaitFirstAttempt(Deadline deadline);
  // Asks the background thread for a new CLUSTER SLOTS (returns at once).
  void RequestRefresh();

 private:
  struct Topology {
    bool cluster = false;
    std::vector<std::shared_ptr<NodePool>> nodes;
    std::array<int16_t, kClusterSlots> owner;  // index into nodes, -1: no owner
  };

  RedisCluster(ClusterOptions options, ClusterEvents events);
  std::shared_ptr<const Topology> Snapshot() const;
  std::shared_ptr<NodePool> PoolFor(const Endpoint& endpoint);
  Status Refresh();
  StatusOr<std::shared_ptr<Topology>> QueryTopology(const Endpoint& endpoint);
  void RefreshLoop();
  // Applies MOVED redirects (slot -> endpoint) to a copy of the topology.
  void ApplyMoved(const std::vector<std::pair<uint16_t, Endpoint>>& moved);

  const ClusterOptions options_;
  const ClusterEvents events_;

  mutable std::mutex topo_mu_;
  std::shared_ptr<const Topology> topology_;
  bool first_attempt_done_ = false;
  Status first_attempt_;  // what the first topology read met
  std::condition_variable ready_cv_;

  std::mutex pools_mu_;
  std::map<std::string, std::shared_ptr<NodePool>> pools_;  // by "host:port"

  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  bool refresh_requested_ = true;
  bool stop_ = false;
  std::thread refresher_;
};

}  // namespace kvt::remote
