#include "host/remote/remote_tier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "host/remote/remote_value.h"
#include "tiering/record_header.h"

namespace kvt::remote {
namespace {

uint64_t NowMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

StatusOr<std::unique_ptr<RemoteTier>> RemoteTier::Create(const RemoteOptions& options, prometheus::Registry& registry) {
  if (options.endpoints.empty()) return InvalidArgument("remote tier: no endpoints");
  if (options.writer_threads == 0 || options.writer_threads > 64) {
    return InvalidArgument("remote tier: writer_threads must be 1-64");
  }
  if (options.write_batch_bytes == 0) return InvalidArgument("remote tier: write batch must be positive");
  ClusterOptions co;
  for (const std::string& e : options.endpoints) {
    KVT_ASSIGN_OR_RETURN(Endpoint ep, ParseEndpoint(e));
    co.seeds.push_back(std::move(ep));
  }
  co.pool.pool_size = options.pool_size;
  co.pool.backoff_min_ms = options.backoff_min_ms;
  co.pool.backoff_max_ms = std::max(options.backoff_min_ms, options.backoff_max_ms);
  co.pool.connection.connect_timeout_ms = options.connect_timeout_ms;
  co.pool.connection.user = options.user;
  co.pool.connection.password = options.password;
  co.max_redirects = options.max_redirects;
  co.op_timeout_ms = options.op_timeout_ms;
  co.split_bytes = options.split_pipeline_bytes;

  auto metrics = std::make_unique<RemoteMetrics>(registry);
  std::unique_ptr<RemoteTier> t(new RemoteTier(options, std::move(metrics)));
  RemoteMetrics* m = t->metrics_.get();
  ClusterEvents events;
  events.pool.connect_failed = [m] { m->connect_errors.Increment(); };
  events.pool.reconnected = [m] { m->reconnects.Increment(); };
  events.topology_read = [m](bool, size_t nodes) {
    m->up.Set(1);
    m->nodes.Set(static_cast<double>(nodes));
  };
  KVT_ASSIGN_OR_RETURN(t->cluster_, RedisCluster::Create(std::move(co), std::move(events)));
  for (uint32_t i = 0; i < options.writer_threads; ++i) t->writers_.emplace_back([p = t.get()] { p->WriterLoop(); });
  return t;
}

RemoteTier::RemoteTier(RemoteOptions options, std::unique_ptr<RemoteMetrics> metrics)
    : options_(std::move(options)), metrics_(std::move(metrics)) {}

RemoteTier::~RemoteTier() {
  (void)Flush(OpDeadline());
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    metrics_->dropped_shutdown.Increment(static_cast<double>(queue_.size()));
    queue_.clear();
    queued_bytes_ = 0;
  }
  work_cv_.notify_all();
  for (auto& w : writers_) w.join();
  cluster_.reset();
}

Status RemoteTier::CheckCredentials(Deadline deadline) {
  Status s = cluster_->WaitFirstAttempt(deadline);
  if (s.code() == StatusCode::kPermissionDenied) return s.WithContext("remote tier");
  return Status::Ok();
}

Deadline RemoteTier::OpDeadline() const { return Deadline::After(std::chrono::milliseconds(options_.op_timeout_ms)); }

void RemoteTier::UpdateUp() {
  bool up = cluster_->ready();
  metrics_->up.Set(up ? 1 : 0);
  metrics_->nodes.Set(static_cast<double>(cluster_->node_count()));
}

void RemoteTier::CountFailures(const ExecuteStats& s, prometheus::Counter& io_errors) {
  if (s.failed_nodes) io_errors.Increment(s.failed_nodes);
  if (s.moved) metrics_->moved.Increment(s.moved);
  if (s.ask) metrics_->ask.Increment(s.ask);
}

uint64_t RemoteTier::CountPresent(const tiering::Fingerprint& fingerprint, std::span<const tiering::ChunkKey> keys) {
  if (keys.empty()) return 0;
  UpdateUp();
  if (!cluster_->ready()) {
    metrics_->misses.Increment();
    return 0;
  }
  std::vector<RedisCommand> cmds(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = RedisKey(options_.key_prefix, keys[i]);
    cmds[i].Add("EXISTS").Add(k);
    cmds[i].set_routing_key(std::move(k));
  }
  ExecuteStats stats;
  auto replies = cluster_->Execute(cmds, OpDeadline(), &stats);
  CountFailures(stats, metrics_->read_errors);
  uint64_t n = 0;
  for (; n < replies.size(); ++n) {
    const auto& r = replies[n];
    if (!r.ok() || r->kind != Reply::Kind::kInteger || r->integer != 1) break;
  }
  if (n) metrics_->hits.Increment(static_cast<double>(n));
  if (n < keys.size()) metrics_->misses.Increment();
  return n;
}

uint64_t RemoteTier::ReadPrefix(const tiering::Fingerprint& fingerprint, std::span<const tiering::ChunkKey> keys,
                                char* out, uint64_t chunk_bytes) {
  if (keys.empty()) return 0;
  UpdateUp();
  if (!cluster_->ready()) {
    metrics_->misses.Increment();
    return 0;
  }
  // Values of the expected size land straight in `out` (header aside); anything else is read
  // into the reply and fails verification below.
  std::vector<char> headers(keys.size() * tiering::kRecordHeaderBytes);
  std::vector<RedisCommand> cmds(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = RedisKey(options_.key_prefix, keys[i]);
    cmds[i].Add("GET").Add(k);
    cmds[i].set_routing_key(std::move(k));
    cmds[i].set_bulk_sink({headers.data() + i * tiering::kRecordHeaderBytes, tiering::kRecordHeaderBytes,
                           out + i * chunk_bytes, chunk_bytes});
  }
  ExecuteStats stats;
  auto replies = cluster_->Execute(cmds, OpDeadline(), &stats);
  CountFailures(stats, metrics_->read_errors);
  uint64_t n = 0;
  std::vector<RedisCommand> deletes;
  for (; n < replies.size(); ++n) {
    const auto& r = replies[n];
    if (!r.ok() || r->kind != Reply::Kind::kBulk) break;
    ValueCheck check = r->in_sink ? VerifyValueParts(std::string_view(headers.data() + n * tiering::kRecordHeaderBytes,
                                                                      tiering::kRecordHeaderBytes),
                                                     std::string_view(out + n * chunk_bytes, chunk_bytes), keys[n],
                                                     fingerprint, chunk_bytes)
                                  : VerifyValue(r->text, keys[n], fingerprint, chunk_bytes);
    if (check != ValueCheck::kOk) {
      const char* why = check == ValueCheck::kCorrupt ? "corrupt" : check == ValueCheck::kStale ? "stale" : "foreign";
      spdlog::warn("remote tier: value {} is {}; served as a miss", cmds[n].routing_key(), why);
      if (check == ValueCheck::kCorrupt) {
        metrics_->checksum_failures.Increment();
        metrics_->rejected_corrupt.Increment();
        RedisCommand del;
        del.Add("DEL").Add(cmds[n].routing_key());
        del.set_routing_key(cmds[n].routing_key());
        deletes.push_back(std::move(del));
      } else {
        (check == ValueCheck::kStale ? metrics_->rejected_stale : metrics_->rejected_foreign).Increment();
      }
      break;
    }
  }
  if (n) {
    metrics_->hits.Increment(static_cast<double>(n));
    metrics_->read_bytes.Increment(static_cast<double>(n * chunk_bytes));
  }
  if (n < keys.size()) metrics_->misses.Increment();
  if (!deletes.empty()) cluster_->Execute(deletes, OpDeadline());  // best effort
  return n;
}

void RemoteTier::Offer(const tiering::ChunkKey& key, const tiering::Fingerprint& fingerprint, uint64_t depth,
                       std::shared_ptr<const char> data, uint64_t bytes) {
  switch (options_.admission) {
    case Admission::kNone: return;
    case Admission::kLeading:
      if (depth >= options_.admit_leading_chunks) return;
      break;
    case Admission::kAll: break;
  }
  if (!cluster_->ready()) {
    metrics_->dropped_unavailable.Increment();
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    if (queued_bytes_ + bytes > options_.write_queue_bytes) {
      metrics_->dropped_queue_full.Increment();
      return;
    }
    queued_bytes_ += bytes;
    queue_.push_back({key, fingerprint, std::move(data), bytes});
    metrics_->queue_bytes.Set(static_cast<double>(queued_bytes_));
  }
  work_cv_.notify_one();
}

void RemoteTier::WriterLoop() {
  std::vector<Item> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    uint64_t bytes = 0;
    while (!queue_.empty() && (batch.empty() || bytes + queue_.front().bytes <= options_.write_batch_bytes)) {
      bytes += queue_.front().bytes;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_bytes_ -= bytes;
    metrics_->queue_bytes.Set(static_cast<double>(queued_bytes_));
    ++in_flight_;
    lock.unlock();
    WriteBatch(batch);
    batch.clear();  // lets go of the host slots
    lock.lock();
    --in_flight_;
    if (queue_.empty() && in_flight_ == 0) idle_cv_.notify_all();
  }
}

void RemoteTier::WriteBatch(std::vector<Item>& batch) {
  std::vector<RedisCommand> cmds(batch.size());
  const uint64_t now = NowMs();
  const std::string ttl = std::to_string(options_.ttl_ms);
  for (size_t i = 0; i < batch.size(); ++i) {
    const Item& it = batch[i];
    std::string k = RedisKey(options_.key_prefix, it.key);
    std::string header = EncodeValueHeader(it.key, it.fingerprint, it.data.get(), it.bytes, now);
    cmds[i].Add("SET").Add(k).AddView(header, std::string_view(it.data.get(), it.bytes));
    if (options_.ttl_ms > 0) cmds[i].Add("PX").Add(ttl);
    cmds[i].set_routing_key(std::move(k));
  }
  ExecuteStats stats;
  auto replies = cluster_->Execute(cmds, OpDeadline(), &stats);
  CountFailures(stats, metrics_->write_errors);
  uint64_t stored = 0, bytes = 0;
  bool warned = false;
  for (size_t i = 0; i < replies.size(); ++i) {
    const auto& r = replies[i];
    if (!r.ok()) {
      metrics_->dropped_unavailable.Increment();
      continue;
    }
    if (r->kind == Reply::Kind::kError) {
      std::string_view msg(r->text);
      metrics_->write_errors.Increment();
      (msg.substr(0, 3) == "OOM" ? metrics_->dropped_oom : metrics_->dropped_error).Increment();
      if (!warned) {
        spdlog::warn("remote tier: write refused: {}", msg);
        warned = true;
      }
      continue;
    }
    ++stored;
    bytes += batch[i].bytes;
  }
  if (stored) {
    metrics_->stored_chunks.Increment(static_cast<double>(stored));
    metrics_->written_bytes.Increment(static_cast<double>(bytes));
  }
}

bool RemoteTier::Flush(Deadline deadline) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_until(lock, deadline.at(), [&] { return queue_.empty() && in_flight_ == 0; });
}

void RemoteTier::Remove(std::span<const tiering::ChunkKey> keys) {
  if (keys.empty()) return;
  {
    std::lock_guard lock(mu_);
    std::unordered_set<tiering::ChunkKey, tiering::ChunkKeyHash> doomed(keys.begin(), keys.end());
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (doomed.count(it->key)) {
        queued_bytes_ -= it->bytes;
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    metrics_->queue_bytes.Set(static_cast<double>(queued_bytes_));
  }
  if (!cluster_->ready()) return;
  std::vector<RedisCommand> cmds(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = RedisKey(options_.key_prefix, keys[i]);
    cmds[i].Add("DEL").Add(k);
    cmds[i].set_routing_key(std::move(k));
  }
  ExecuteStats stats;
  cluster_->Execute(cmds, OpDeadline(), &stats);
  CountFailures(stats, metrics_->write_errors);
}

}  // namespace kvt::remote
