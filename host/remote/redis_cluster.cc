#include "host/remote/redis_cluster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace kvt::remote {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" (an empty host means "the node you asked").
bool ParseRedirect(std::string_view msg, const Endpoint& asked, uint16_t* slot, Endpoint* to) {
  size_t a = msg.find(' ');
  if (a == std::string_view::npos) return false;
  size_t b = msg.find(' ', a + 1);
  if (b == std::string_view::npos) return false;
  uint32_t s = 0;
  for (char c : msg.substr(a + 1, b - a - 1)) {
    if (c < '0' || c > '9') return false;
    s = s * 10 + static_cast<uint32_t>(c - '0');
  }
  if (s >= kClusterSlots) return false;
  std::string_view ep = msg.substr(b + 1);
  if (StartsWith(ep, ":")) {
    auto parsed = ParseEndpoint(asked.host + std::string(ep));
    if (!parsed.ok()) return false;
    *to = *parsed;
  } else {
    auto parsed = ParseEndpoint(ep);
    if (!parsed.ok()) return false;
    *to = *parsed;
  }
  *slot = static_cast<uint16_t>(s);
  return true;
}

bool IsTimeout(const Status& s) { return s.code() == StatusCode::kTimeout; }

}  // namespace

StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Create(ClusterOptions options, ClusterEvents events) {
  if (options.seeds.empty()) return InvalidArgument("remote tier: no endpoints");
  if (options.pool.pool_size == 0) return InvalidArgument("remote tier: pool size must be positive");
  if (options.op_timeout_ms == 0) return InvalidArgument("remote tier: timeout must be positive");
  std::unique_ptr<RedisCluster> c(new RedisCluster(std::move(options), std::move(events)));
  c->refresher_ = std::thread([p = c.get()] { p->RefreshLoop(); });
  return c;
}

RedisCluster::RedisCluster(ClusterOptions options, ClusterEvents events)
    : options_(std::move(options)), events_(std::move(events)) {}

RedisCluster::~RedisCluster() {
  {
    std::lock_guard lock(refresh_mu_);
    stop_ = true;
  }
  refresh_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

std::shared_ptr<const RedisCluster::Topology> RedisCluster::Snapshot() const {
  std::lock_guard lock(topo_mu_);
  return topology_;
}

bool RedisCluster::ready() const { return Snapshot() != nullptr; }

bool RedisCluster::is_cluster() const {
  auto t = Snapshot();
  return t && t->cluster;
}

size_t RedisCluster::node_count() const {
  auto t = Snapshot();
  return t ? t->nodes.size() : 0;
}

bool RedisCluster::WaitReady(Deadline deadline) {
  std::unique_lock lock(topo_mu_);
  return ready_cv_.wait_until(lock, deadline.at(), [&] { return topology_ != nullptr; });
}

Status RedisCluster::WaitFirstAttempt(Deadline deadline) {
  std::unique_lock lock(topo_mu_);
  if (!ready_cv_.wait_until(lock, deadline.at(), [&] { return topology_ != nullptr || first_attempt_done_; })) {
    return Timeout("remote tier: the first topology read has not ended yet");
  }
  if (topology_) return Status::Ok();
  return first_attempt_;
}

void RedisCluster::RequestRefresh() {
  {
    std::lock_guard lock(refresh_mu_);
    refresh_requested_ = true;
  }
  refresh_cv_.notify_all();
}

std::shared_ptr<NodePool> RedisCluster::PoolFor(const Endpoint& endpoint) {
  std::lock_guard lock(pools_mu_);
  auto& p = pools_[endpoint.ToString()];
  if (!p) p = std::make_shared<NodePool>(endpoint, options_.pool, events_.pool);
  return p;
}

StatusOr<std::shared_ptr<RedisCluster::Topology>> RedisCluster::QueryTopology(const Endpoint& endpoint) {
  auto pool = PoolFor(endpoint);
  Deadline deadline = Deadline::After(std::chrono::milliseconds(options_.op_timeout_ms));
  KVT_ASSIGN_OR_RETURN(auto conn, pool->Acquire(deadline));
  RedisCommand cmd;
  cmd.Add("CLUSTER").Add("SLOTS");
  auto reply = conn->Call(cmd, deadline);
  if (reply.ok()) conn->CountUse();
  pool->Release(std::move(conn));
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  auto topo = std::make_shared<Topology>();
  topo->owner.fill(-1);
  if (r->type == REDIS_REPLY_ERROR) {
    std::string_view msg(r->str, r->len);
    if (StartsWith(msg, "NOPERM")) {  // an ACL user without CLUSTER SLOTS
      return PermissionDenied("CLUSTER SLOTS on " + endpoint.ToString() + ": " + std::string(msg));
    }
    if (msg.find("cluster support disabled") == std::string_view::npos) {
      return IoError("CLUSTER SLOTS on " + endpoint.ToString() + ": " + std::string(msg));
    }
    topo->cluster = false;
    topo->nodes.push_back(pool);
    topo->owner.fill(0);
    return topo;
  }
  if (r->type != REDIS_REPLY_ARRAY) return IoError("CLUSTER SLOTS on " + endpoint.ToString() + ": not an array");
  topo->cluster = true;
  std::map<std::string, int16_t> index;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* range = r->element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER || range->element[2]->type != REDIS_REPLY_ARRAY ||
        range->element[2]->elements < 2) {
      return IoError("CLUSTER SLOTS on " + endpoint.ToString() + ": malformed entry");
    }
    long long lo = range->element[0]->integer, hi = range->element[1]->integer;
    const redisReply* master = range->element[2];
    if (master->element[0]->type != REDIS_REPLY_STRING || master->element[1]->type != REDIS_REPLY_INTEGER ||
        lo < 0 || hi >= kClusterSlots || lo > hi) {
      return IoError("CLUSTER SLOTS on " + endpoint.ToString() + ": malformed entry");
    }
    Endpoint ep;
    ep.host = std::string(master->element[0]->str, master->element[0]->len);
    if (ep.host.empty() || ep.host == "?") ep.host = endpoint.host;
    ep.port = static_cast<int>(master->element[1]->integer);
    auto [it, inserted] = index.emplace(ep.ToString(), static_cast<int16_t>(topo->nodes.size()));
    if (inserted) topo->nodes.push_back(PoolFor(ep));
    for (long long s = lo; s <= hi; ++s) topo->owner[s] = it->second;
  }
  if (topo->nodes.empty()) return IoError("CLUSTER SLOTS on " + endpoint.ToString() + ": no slots assigned yet");
  return topo;
}

Status RedisCluster::Refresh() {
  std::vector<Endpoint> candidates = options_.seeds;
  if (auto t = Snapshot()) {
    for (const auto& n : t->nodes) {
      if (std::find(candidates.begin(), candidates.end(), n->endpoint()) == candidates.end()) {
        candidates.push_back(n->endpoint());
      }
    }
  }
  Status last = Disconnected("no endpoint answered");
  for (const Endpoint& ep : candidates) {
    auto topo = QueryTopology(ep);
    if (!topo.ok()) {
      // Refused credentials say more than an unreachable seed tried after them.
      if (last.code() != StatusCode::kPermissionDenied) last = topo.status();
      continue;
    }
    bool first;
    {
      std::lock_guard lock(topo_mu_);
      first = topology_ == nullptr;
      topology_ = std::move(*topo);
    }
    ready_cv_.notify_all();
    auto t = Snapshot();
    if (events_.topology_read) events_.topology_read(t->cluster, t->nodes.size());
    if (first) {
      spdlog::info("remote tier: {} with {} node(s) found through {}", t->cluster ? "Redis Cluster" : "single Redis",
                   t->nodes.size(), ep.ToString());
    }
    return Status::Ok();
  }
  return last;
}

void RedisCluster::RefreshLoop() {
  auto backoff = std::chrono::milliseconds(options_.pool.backoff_min_ms);
  bool warned = false;
  std::unique_lock lock(refresh_mu_);
  while (!stop_) {
    refresh_cv_.wait(lock, [&] { return stop_ || refresh_requested_; });
    if (stop_) break;
    refresh_requested_ = false;
    lock.unlock();
    Status s = Refresh();
    {
      std::lock_guard topo_lock(topo_mu_);
      if (!first_attempt_done_) {
        first_attempt_done_ = true;
        first_attempt_ = s;
      }
    }
    ready_cv_.notify_all();
    lock.lock();
    if (s.ok()) {
      backoff = std::chrono::milliseconds(options_.pool.backoff_min_ms);
      warned = false;
      // Coalesce bursts of MOVED replies into one refresh per back-off period.
      refresh_cv_.wait_for(lock, backoff, [&] { return stop_; });
      continue;
    }
    if (!warned) {
      spdlog::warn("remote tier: cannot read the Redis topology ({}); serving from local tiers, retrying",
                   s.ToString());
      warned = true;
    }
    if (events_.topology_failed) events_.topology_failed(s);
    refresh_requested_ = true;  // keep trying
    refresh_cv_.wait_for(lock, backoff, [&] { return stop_; });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(options_.pool.backoff_max_ms));
  }
}

void RedisCluster::ApplyMoved(const std::vector<std::pair<uint16_t, Endpoint>>& moved) {
  if (moved.empty()) return;
  std::vector<std::shared_ptr<NodePool>> pools;
  for (const auto& m : moved) pools.push_back(PoolFor(m.second));
  std::lock_guard lock(topo_mu_);
  if (!topology_) return;
  auto t = std::make_shared<Topology>(*topology_);
  for (size_t i = 0; i < moved.size(); ++i) {
    auto it = std::find(t->nodes.begin(), t->nodes.end(), pools[i]);
    int16_t idx;
    if (it == t->nodes.end()) {
      idx = static_cast<int16_t>(t->nodes.size());
      t->nodes.push_back(pools[i]);
    } else {
      idx = static_cast<int16_t>(it - t->nodes.begin());
    }
    t->owner[moved[i].first] = idx;
  }
  topology_ = std::move(t);
}

std::vector<StatusOr<Reply>> RedisCluster::Execute(std::span<const RedisCommand> commands, Deadline deadline,
                                                        ExecuteStats* stats) {
  ExecuteStats local;
  if (!stats) stats = &local;
  const size_t n = commands.size();
  std::vector<StatusOr<Reply>> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.emplace_back(Disconnected("not sent"));
  std::vector<std::shared_ptr<NodePool>> target(n);  // ASK override
  std::vector<char> asking(n, 0);
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;
  std::vector<NodePool*> want_fresh;  // pools whose reused connection was reset last round
  RedisCommand asking_cmd;
  asking_cmd.Add("ASKING");

  for (uint32_t round = 0; !pending.empty() && round <= options_.max_redirects + 1; ++round) {
    auto topo = Snapshot();
    if (!topo) {
      for (size_t i : pending) out[i] = Disconnected("remote tier: Redis topology not known yet");
      RequestRefresh();
      break;
    }
    struct Group {
      std::shared_ptr<NodePool> pool;
      std::vector<size_t> idx;
      std::unique_ptr<RedisConnection> conn;
      bool reused = false;
    };
    std::vector<Group> groups;
    std::map<NodePool*, size_t> group_of;
    for (size_t i : pending) {
      std::shared_ptr<NodePool> pool = target[i];
      if (!pool) {
        int16_t o = topo->owner[KeySlot(commands[i].routing_key())];
        if (o < 0) {
          out[i] = Disconnected("slot not served");
          continue;
        }
        pool = topo->nodes[o];
      }
      auto [it, inserted] = group_of.emplace(pool.get(), groups.size());
      if (inserted) groups.push_back({pool, {}, nullptr, false});
      groups[it->second].idx.push_back(i);
    }
    // Redis serves a long pipeline of large values on one connection poorly (its query and
    // reply buffers are built for small commands), so a node's share of large values is spread
    // over up to pool_size connections, ~split_bytes each; all are sent before any is read.
    const uint64_t kSplitBytes = options_.split_bytes;
    const size_t whole_groups = groups.size();
    std::vector<size_t> split_parent;
    for (size_t gi = 0; gi < whole_groups; ++gi) {
      if (kSplitBytes == 0 || groups[gi].idx.size() < 2 || options_.pool.pool_size < 2) continue;
      auto weight = [&](size_t i) {
        const BulkSink* s = commands[i].bulk_sink();
        return commands[i].encoded_bytes() + (s ? s->header_bytes + s->payload_bytes : 0);
      };
      uint64_t total = 0;
      for (size_t i : groups[gi].idx) total += weight(i);
      size_t parts = std::min<size_t>({options_.pool.pool_size, groups[gi].idx.size(), total / kSplitBytes});
      if (parts < 2) continue;
      std::vector<size_t> all = std::move(groups[gi].idx);
      groups[gi].idx.clear();
      uint64_t per = total / parts, acc = 0;
      size_t part = 0, target_group = gi;
      for (size_t i : all) {
        if (acc >= per * (part + 1) && part + 1 < parts) {
          ++part;
          target_group = groups.size();
          groups.push_back({groups[gi].pool, {}, nullptr, false});
          split_parent.push_back(gi);
        }
        groups[target_group].idx.push_back(i);
        acc += weight(i);
      }
    }
    std::vector<size_t> next;
    std::vector<std::pair<uint16_t, Endpoint>> moved;
    std::vector<NodePool*> fresh_next;
    bool need_refresh = false;

    auto fail_group = [&](Group& g, const Status& s, size_t from) {
      if (g.conn) {
        bool retry = g.reused && !IsTimeout(s) && from == 0 &&
                     std::find(want_fresh.begin(), want_fresh.end(), g.pool.get()) == want_fresh.end();
        if (IsTimeout(s)) g.pool->MarkDown();
        g.pool->Release(std::move(g.conn));
        if (retry) {  // a reset idle connection: once more on a fresh one
          fresh_next.push_back(g.pool.get());
          for (size_t k = from; k < g.idx.size(); ++k) next.push_back(g.idx[k]);
          return;
        }
      }
      ++stats->failed_nodes;
      for (size_t k = from; k < g.idx.size(); ++k) out[g.idx[k]] = s;
    };

    auto SendGroup = [&](Group& g) {
      g.reused = g.conn->uses() > 0;
      std::vector<const RedisCommand*> batch;
      batch.reserve(g.idx.size());
      for (size_t i : g.idx) {
        if (asking[i]) batch.push_back(&asking_cmd);
        batch.push_back(&commands[i]);
      }
      Status s = g.conn->Send(batch, deadline);
      if (!s.ok()) fail_group(g, s, 0);
    };
    // First each node's own connection (waiting for one if need be) ...
    for (size_t gi = 0; gi < whole_groups; ++gi) {
      Group& g = groups[gi];
      bool fresh = std::find(want_fresh.begin(), want_fresh.end(), g.pool.get()) != want_fresh.end();
      auto conn = g.pool->Acquire(deadline, fresh);
      if (!conn.ok()) {
        ++stats->failed_nodes;
        for (size_t i : g.idx) out[i] = conn.status();
        g.idx.clear();
        continue;
      }
      g.conn = std::move(*conn);
    }
    // ... then the extra connections of split groups, only if free; otherwise the part rejoins
    // its first group's pipeline (or fails with it).
    for (size_t gi = whole_groups; gi < groups.size(); ++gi) {
      Group& parent = groups[split_parent[gi - whole_groups]];
      auto conn = parent.conn ? groups[gi].pool->Acquire(deadline, false, /*wait=*/false)
                              : StatusOr<std::unique_ptr<RedisConnection>>(Busy("node failed"));
      if (conn.ok()) {
        groups[gi].conn = std::move(*conn);
        continue;
      }
      if (parent.conn) {
        parent.idx.insert(parent.idx.end(), groups[gi].idx.begin(), groups[gi].idx.end());
      } else {
        for (size_t i : groups[gi].idx) out[i] = Disconnected("redis node " + parent.pool->endpoint().ToString() + " failed");
      }
      groups[gi].idx.clear();
    }
    // Send every pipeline before reading any reply.
    for (Group& g : groups) {
      if (g.conn && !g.idx.empty()) SendGroup(g);
    }
    for (Group& g : groups) {
      if (!g.conn) continue;
      bool failed = false;
      for (size_t k = 0; k < g.idx.size() && !failed; ++k) {
        size_t i = g.idx[k];
        if (asking[i]) {
          auto ack = g.conn->ReadSimple(deadline, nullptr);  // +OK of ASKING
          if (!ack.ok()) {
            fail_group(g, ack.status(), k);
            failed = true;
            break;
          }
        }
        auto reply = g.conn->ReadSimple(deadline, commands[i].bulk_sink());
        if (!reply.ok()) {
          fail_group(g, reply.status(), k);
          failed = true;
          break;
        }
        asking[i] = 0;
        if (reply->kind == Reply::Kind::kError) {
          std::string_view msg(reply->text);
          uint16_t slot;
          Endpoint to;
          if (StartsWith(msg, "MOVED ") && ParseRedirect(msg, g.pool->endpoint(), &slot, &to)) {
            ++stats->moved;
            moved.emplace_back(slot, to);
            target[i] = nullptr;
            next.push_back(i);
            need_refresh = true;
            continue;
          }
          if (StartsWith(msg, "ASK ") && ParseRedirect(msg, g.pool->endpoint(), &slot, &to)) {
            ++stats->ask;
            target[i] = PoolFor(to);
            asking[i] = 1;
            next.push_back(i);
            continue;
          }
          if (StartsWith(msg, "TRYAGAIN")) {
            next.push_back(i);
            continue;
          }
          if (StartsWith(msg, "CLUSTERDOWN")) need_refresh = true;
        }
        out[i] = std::move(*reply);
      }
      if (!failed) {
        g.conn->CountUse();
        g.pool->Release(std::move(g.conn));
      }
    }
    ApplyMoved(moved);
    if (need_refresh) RequestRefresh();
    for (size_t i : next) out[i] = Disconnected("redirected more than " + std::to_string(options_.max_redirects) + " times");
    pending = std::move(next);
    want_fresh = std::move(fresh_next);
    if (deadline.expired()) {
      for (size_t i : pending) out[i] = Timeout("remote tier: deadline passed during redirects");
      break;
    }
  }
  return out;
}

}  // namespace kvt::remote
