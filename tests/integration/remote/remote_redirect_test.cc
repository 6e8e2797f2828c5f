// Slot migration seen by the remote tier on a real three-shard Redis Cluster: while a slot is
// half-migrated (CLUSTER SETSLOT ... MIGRATING / IMPORTING, keys moved with MIGRATE) the source
// answers ASK for the keys it no longer has, and the tier must re-send to the target prefixed by
// ASKING (without it the target answers MOVED back to the source) and must not change its slot
// map; once the migration is committed (SETSLOT ... NODE) a daemon with the old map gets MOVED,
// follows it, refreshes its map, and asks the right shard from then on.
#include <gtest/gtest.h>

#include <map>

#include "tests/integration/remote/remote_test_util.h"

namespace kvt::testing {
namespace {

using std::chrono::milliseconds;

TEST(RemoteRedirectTest, AskDuringMigrationIsFollowedWithAskingAndMovedAfterItRefreshesTheMap) {
  if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
  RedisClusterFixture cluster;
  ASSERT_TRUE(cluster.Start(3));
  TempDir dir;
  RemoteDaemonOptions o;
  o.endpoints = cluster.endpoints();
  // A writes; B reads during the migration; C (old map, nothing read yet) reads after it.
  auto a = StartRemoteDaemon(dir, "a", o);
  auto b = StartRemoteDaemon(dir, "b", o);
  auto c = StartRemoteDaemon(dir, "c", o);
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(WaitFor([&] { return Metric(*a, "kvt_remote_up") + Metric(*b, "kvt_remote_up") + Metric(*c, "kvt_remote_up") == 3; },
                      milliseconds(5000)));
  Session sa, sb, sc;
  ASSERT_TRUE(sa.Open(*a));
  ASSERT_TRUE(sb.Open(*b));
  ASSERT_TRUE(sc.Open(*c));
  constexpr uint64_t kPrefixes = 4, kChunks = 6;
  for (uint64_t p = 0; p < kPrefixes; ++p) ASSERT_TRUE(sa.Store(500 + p, kChunks));
  ASSERT_TRUE(WaitFor([&] { return Metric(*a, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= kPrefixes * kChunks; },
                      milliseconds(5000)));

  // Every slot holding a chunk starts migrating to the next shard, and its keys move there.
  std::vector<std::string> ids, keys = cluster.Keys("kvt:*");
  ASSERT_EQ(keys.size(), kPrefixes * kChunks);
  std::map<int, size_t> shard_of_port;
  for (size_t s = 0; s < cluster.size(); ++s) {
    ids.push_back(FirstLineOf(RedisCli(cluster.shard(s).port(), {"CLUSTER", "MYID"})));
    shard_of_port[cluster.shard(s).port()] = s;
  }
  struct Move {
    size_t from, to;
    std::vector<std::string> keys;
  };
  std::map<std::string, Move> by_slot;
  for (const std::string& k : keys) {
    std::string slot = FirstLineOf(RedisCli(cluster.shard(0).port(), {"CLUSTER", "KEYSLOT", k}));
    int port = cluster.PortOf(k);
    ASSERT_GT(port, 0) << k;
    size_t from = shard_of_port[port];
    auto [it, inserted] = by_slot.try_emplace(slot, Move{from, (from + 1) % cluster.size(), {}});
    it->second.keys.push_back(k);
  }
  for (const auto& [slot, m] : by_slot) {
    ASSERT_EQ(FirstLineOf(RedisCli(cluster.shard(m.to).port(), {"CLUSTER", "SETSLOT", slot, "IMPORTING", ids[m.from]})), "OK");
    ASSERT_EQ(FirstLineOf(RedisCli(cluster.shard(m.from).port(), {"CLUSTER", "SETSLOT", slot, "MIGRATING", ids[m.to]})), "OK");
    std::vector<std::string> migrate = {"MIGRATE", "127.0.0.1", std::to_string(cluster.shard(m.to).port()), "", "0",
                                        "5000", "KEYS"};
    migrate.insert(migrate.end(), m.keys.begin(), m.keys.end());
    ASSERT_EQ(FirstLineOf(RedisCli(cluster.shard(m.from).port(), migrate)), "OK");
  }
  // The source now answers ASK for these keys.
  const Move& any = by_slot.begin()->second;
  ASSERT_EQ(RedisCli(cluster.shard(any.from).port(), {"GET", any.keys[0]}).rfind("ASK ", 0), 0u);

  for (uint64_t p = 0; p < kPrefixes; ++p) {
    EXPECT_EQ(sb.Lookup(500 + p, kChunks), kChunks) << "prefix " << p << " (EXISTS through ASK)";
    bool exact = false;
    EXPECT_EQ(sb.Retrieve(500 + p, kChunks, &exact), kChunks) << "prefix " << p << " (GET through ASK)";
    EXPECT_TRUE(exact) << "prefix " << p;
  }
  // Each key was asked for twice (EXISTS, GET), each time redirected by ASK.
  EXPECT_GE(Metric(*b, "kvt_remote_redirects_total", {"kind=\"ask\""}), 2.0 * keys.size());
  EXPECT_EQ(Metric(*b, "kvt_remote_redirects_total", {"kind=\"moved\""}), 0)
      << "ASK is one-off: the slot map must not change, and with ASKING the target never answers MOVED";

  // Commit the migration on every node (target first, as redis-cli --cluster does).
  for (const auto& [slot, m] : by_slot) {
    for (size_t s : {m.to, m.from, 3 - m.to - m.from}) {
      ASSERT_EQ(FirstLineOf(RedisCli(cluster.shard(s).port(), {"CLUSTER", "SETSLOT", slot, "NODE", ids[m.to]})), "OK");
    }
  }
  ASSERT_EQ(RedisCli(cluster.shard(any.from).port(), {"GET", any.keys[0]}).rfind("MOVED ", 0), 0u);
  // C still has the map from before the migration: its first reads are MOVED, then the map is
  // refreshed (every moved slot, not just those C was told about), and no MOVED follows.
  for (uint64_t p = 0; p < 2; ++p) {
    bool exact = false;
    EXPECT_EQ(sc.Retrieve(500 + p, kChunks, &exact), kChunks) << "prefix " << p << " (through MOVED)";
    EXPECT_TRUE(exact);
  }
  double moved = Metric(*c, "kvt_remote_redirects_total", {"kind=\"moved\""});
  EXPECT_GE(moved, 1);
  std::this_thread::sleep_for(milliseconds(500));  // the refresh runs at once; leave it time under load
  for (uint64_t p = 2; p < kPrefixes; ++p) {
    bool exact = false;
    EXPECT_EQ(sc.Retrieve(500 + p, kChunks, &exact), kChunks) << "prefix " << p;
    EXPECT_TRUE(exact);
  }
  EXPECT_EQ(Metric(*c, "kvt_remote_redirects_total", {"kind=\"moved\""}), moved)
      << "after the refresh every key goes to its new owner directly";
  EXPECT_EQ(Metric(*c, "kvt_remote_redirects_total", {"kind=\"ask\""}), 0);
  for (auto* d : {&a, &b, &c}) EXPECT_EQ((*d)->Stop(), 0) << (*d)->Log();
}

}  // namespace
}  // namespace kvt::testing
