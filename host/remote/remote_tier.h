// RemoteTier — chunks shared by every node through Redis (a cluster or a single instance).
//
// Reads: CountPresent (EXISTS per key) and ReadPrefix (GET per key) send the whole batch as one
// pipeline per shard, all shards before any reply is read: one round trip, bounded by
// op_timeout_ms. Every value is verified (tiering/record_header.h via remote_value.h) before a
// byte reaches the caller; a foreign, stale or corrupt value ends the prefix like a miss (and a
// corrupt one is deleted).
// Writes: Offer queues a chunk the local tiers already hold (the queue shares ownership of its
// host slot, so nothing is copied) when the admission rule takes it; writer threads send it
// behind as SET key value [PX ttl] in pipelined batches. Nothing on the store path waits on
// Redis; a full queue, an unreachable or full (OOM) Redis drop the write and count it.
// Faults: every failure is a miss plus a metric; connections reconnect with back-off
// (node_pool.h); the topology is re-read on MOVED and on failures (redis_cluster.h).
//
// Thread-safe.
#pragma once

#include <prometheus/registry.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/status_or.h"
#include "host/remote/redis_cluster.h"
#include "host/remote/remote_metrics.h"
#include "host/remote/remote_options.h"
#include "tiering/prefix_tier.h"

namespace kvt::remote {

struct RemoteCapabilities {
  bool shared_across_nodes = true;  // other daemons see what this one writes
  bool pipelined = true;            // one round trip per batch
  bool write_behind = true;         // stores never wait on it
  bool verifies_reads = true;
  uint64_t max_value_bytes = 512ull << 20;  // Redis' default proto-max-bulk-len
};

class RemoteTier final : public tiering::PrefixTier {
 public:
  // Fails only on unusable options; Redis being unreachable is not an error (the tier serves
  // misses and keeps reconnecting).
  static StatusOr<std::unique_ptr<RemoteTier>> Create(const RemoteOptions& options, prometheus::Registry& registry);
  ~RemoteTier() override;  // drains queued writes for at most op_timeout_ms, then drops the rest

  uint64_t CountPresent(const tiering::Fingerprint& fingerprint, std::span<const tiering::ChunkKey> keys) override;
  uint64_t ReadPrefix(const tiering::Fingerprint& fingerprint, std::span<const tiering::ChunkKey> keys, char* out,
                      uint64_t chunk_bytes) override;
  void Offer(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint, uint64_t depth,
             std::shared_ptr<const char> data, uint64_t bytes) override;
  void Remove(std::span<const tiering::ChunkKey> keys) override;

  // Waits until every queued write has been sent and answered; false at the deadline.
  bool Flush(Deadline deadline);
  bool WaitReady(Deadline deadline) { return cluster_->WaitReady(deadline); }
  // PERMISSION_DENIED when Redis refused this tier's credentials (AUTH, or an ACL user not
  // allowed CLUSTER SLOTS) in the first topology read; OK when that read succeeded, failed for
  // another reason (unreachable: the tier keeps trying) or has not ended by the deadline.
  // The message names the user and the node, never the password.
  Status CheckCredentials(Deadline deadline);
  RemoteCapabilities capabilities() const { return {}; }
  bool is_cluster() const { return cluster_->is_cluster(); }
  const RemoteMetrics& metrics() const { return *metrics_; }

 private:
  struct Item {
    tiering::ChunkKey key;
    tiering::Fingerprint fingerprint;
    std::shared_ptr<const char> data;
    uint64_t bytes;
  };

  RemoteTier(RemoteOptions options, std::unique_ptr<RemoteMetrics> metrics);
  void WriterLoop();
  void WriteBatch(std::vector<Item>& batch);
  Deadline OpDeadline() const;
  void CountFailures(const ExecuteStats& stats, prometheus::Counter& io_errors);
  void UpdateUp();

  const RemoteOptions options_;
  std::unique_ptr<RemoteMetrics> metrics_;
  std::unique_ptr<RedisCluster> cluster_;

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<Item> queue_;
  uint64_t queued_bytes_ = 0;
  uint32_t in_flight_ = 0;
  bool stop_ = false;
  std::vector<std::thread> writers_;
};

}  // namespace kvt::remote
