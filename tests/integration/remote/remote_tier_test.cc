// The remote tier end to end: real kv-tierd processes sharing a real three-shard Redis Cluster
// (or a single instance) on loopback, real clients through libkvtier, faults made with
// redis-server/redis-cli. Skipped (exit 77) only when redis-server is not installed.
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "tests/integration/remote/remote_test_util.h"

namespace kvt::testing {
namespace {

using std::chrono::milliseconds;

class SharedClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!RedisInstalled()) return;
    cluster_ = new RedisClusterFixture();
    if (!cluster_->Start(3)) {
      delete cluster_;
      cluster_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;  // stops every shard
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
    ASSERT_NE(cluster_, nullptr) << "could not start a three-shard Redis Cluster";
  }
  // Two daemons on the cluster under a key prefix private to the test.
  void StartPair(const std::string& prefix, const std::string& extra_a = "", const std::string& extra_b = "") {
    RemoteDaemonOptions o;
    o.endpoints = cluster_->endpoints();
    o.key_prefix = prefix;
    o.extra_yaml = extra_a;
    a_ = StartRemoteDaemon(dir_, "a", o);
    ASSERT_NE(a_, nullptr);
    o.extra_yaml = extra_b;
    b_ = StartRemoteDaemon(dir_, "b", o);
    ASSERT_NE(b_, nullptr);
    ASSERT_TRUE(WaitFor([&] { return Metric(*a_, "kvt_remote_up") == 1 && Metric(*b_, "kvt_remote_up") == 1; },
                        milliseconds(5000)));
  }
  // Waits until daemon `d` has written `chunks` chunks to Redis in all.
  bool WaitWritten(DaemonProcess& d, double chunks) {
    return WaitFor([&] { return Metric(d, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= chunks; },
                   milliseconds(5000));
  }
  void TearDown() override {
    for (auto* d : {&a_, &b_}) {
      if (*d && (*d)->Alive()) {
        EXPECT_EQ((*d)->Stop(), 0) << (*d)->Log();
      }
    }
  }

  static RedisClusterFixture* cluster_;
  TempDir dir_;
  std::unique_ptr<DaemonProcess> a_, b_;
};
RedisClusterFixture* SharedClusterTest::cluster_ = nullptr;

TEST_F(SharedClusterTest, PrefixStoredThroughOneDaemonIsRetrievedBitExactThroughAnother) {
  StartPair("share:");
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  for (uint64_t p = 0; p < 6; ++p) ASSERT_TRUE(sa.Store(100 + p, 8));
  ASSERT_TRUE(WaitWritten(*a_, 48)) << a_->Log();
  // Spread over the shards (no hash tags): every shard holds some of the 48 chunks.
  for (size_t s = 0; s < cluster_->size(); ++s) {
    EXPECT_FALSE(RedisCli(cluster_->shard(s).port(), {"--scan", "--pattern", "share:*"}).empty()) << "shard " << s;
  }
  for (uint64_t p = 0; p < 6; ++p) {
    EXPECT_EQ(sb.Lookup(100 + p, 8), 8u) << "prefix " << p;
    bool exact = false;
    EXPECT_EQ(sb.Retrieve(100 + p, 8, &exact), 8u);
    EXPECT_TRUE(exact) << "prefix " << p << " must come back bit-exact";
  }
  EXPECT_GE(Metric(*b_, "kvt_tier_hits_total", {"tier=\"remote\""}), 48);
  // Retrieval brought the chunks into B's host tier: the next retrieve is a host hit.
  double remote_hits = Metric(*b_, "kvt_tier_hits_total", {"tier=\"remote\""});
  bool exact = false;
  EXPECT_EQ(sb.Retrieve(100, 8, &exact), 8u);
  EXPECT_TRUE(exact);
  EXPECT_EQ(Metric(*b_, "kvt_tier_hits_total", {"tier=\"remote\""}), remote_hits);
  // A longer prefix on B: the shared part hits, the rest misses.
  EXPECT_EQ(sb.Lookup(999, 4), 0u);
}

TEST_F(SharedClusterTest, TenantsAreIsolatedOnTheSharedCluster) {
  StartPair("tenant:");
  Session alice_a, bob_b, alice_b;
  ASSERT_TRUE(alice_a.Open(*a_, "alice"));
  ASSERT_TRUE(bob_b.Open(*b_, "bob"));
  ASSERT_TRUE(alice_b.Open(*b_, "alice"));
  ASSERT_TRUE(alice_a.Store(7, 6));
  ASSERT_TRUE(WaitWritten(*a_, 6));
  EXPECT_EQ(bob_b.Lookup(7, 6), 0u) << "same tokens, other tenant: a miss";
  bool exact = true;
  EXPECT_EQ(bob_b.Retrieve(7, 6, &exact), 0u);
  EXPECT_EQ(alice_b.Lookup(7, 6), 6u);
  EXPECT_EQ(alice_b.Retrieve(7, 6, &exact), 6u);
  EXPECT_TRUE(exact);
}

TEST_F(SharedClusterTest, CorruptForeignAndTruncatedValuesAreMissesNeverWrongData) {
  StartPair("corrupt:");
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  std::set<std::string> seen;
  auto fresh_keys = [&](uint64_t seed, double total) {
    EXPECT_TRUE(sa.Store(seed, 4));
    EXPECT_TRUE(WaitWritten(*a_, total));
    std::vector<std::string> fresh;
    for (auto& k : cluster_->Keys("corrupt:*")) {
      if (seen.insert(k).second) fresh.push_back(k);
    }
    return fresh;
  };
  struct Case {
    const char* what;
    std::function<void(const std::vector<std::string>& keys)> damage;
  };
  std::vector<Case> cases = {
      {"payload byte changed (redis-cli SETRANGE)",
       [&](const auto& k) { RedisCli(cluster_->PortOf(k[0]), {"SETRANGE", k[0], "300", "X"}); }},
      {"header changed (redis-cli SETRANGE)",
       [&](const auto& k) { RedisCli(cluster_->PortOf(k[0]), {"SETRANGE", k[0], "40", "XYZ"}); }},
      {"truncated (redis-cli SET)", [&](const auto& k) { RedisCli(cluster_->PortOf(k[0]), {"SET", k[0], "short"}); }},
      {"extended (redis-cli APPEND)",
       [&](const auto& k) { RedisCli(cluster_->PortOf(k[0]), {"APPEND", k[0], "tail"}); }},
      {"another chunk's value under this key",
       [&](const auto& k) {
         std::string v;
         ASSERT_TRUE(cluster_->RawGet(k[1], &v));
         ASSERT_TRUE(cluster_->RawSet(k[0], v));
       }},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    auto keys = fresh_keys(500 + c, 4.0 * (c + 1));
    ASSERT_EQ(keys.size(), 4u) << cases[c].what;
    cases[c].damage(keys);
    bool exact = false;
    uint64_t got = sb.Retrieve(500 + c, 4, &exact);
    EXPECT_LT(got, 4u) << cases[c].what << ": a damaged chunk must end the prefix";
    EXPECT_TRUE(exact) << cases[c].what << ": what came back must be the bytes stored";
  }
  EXPECT_GE(Metric(*b_, "kvt_checksum_failures_total", {"tier=\"remote\""}), 4);
  EXPECT_GE(Metric(*b_, "kvt_remote_rejected_values_total", {"reason=\"foreign\""}), 1);
}

TEST_F(SharedClusterTest, TtlExpiryTurnsIntoAMiss) {
  // 3 s: long enough that a loaded machine still sees the chunks before they expire.
  StartPair("ttl:", "  ttl_ms: 3000\n", "  ttl_ms: 3000\n");
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  ASSERT_TRUE(sa.Store(42, 4));
  ASSERT_TRUE(WaitWritten(*a_, 4));
  EXPECT_EQ(sb.Lookup(42, 4), 4u);
  auto keys = cluster_->Keys("ttl:*");
  ASSERT_FALSE(keys.empty());
  std::string pttl = RedisCli(cluster_->PortOf(keys[0]), {"PTTL", keys[0]});
  EXPECT_GT(std::stol(pttl), 0) << pttl;
  EXPECT_TRUE(WaitFor([&] { return sb.Lookup(42, 4) == 0; }, milliseconds(8000))) << "expired chunks must miss";
  bool exact = true;
  EXPECT_EQ(sb.Retrieve(42, 4, &exact), 0u);
}

TEST_F(SharedClusterTest, SlowShardCostsOneBoundedTimeoutAndRecovers) {
  StartPair("slow:");
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  ASSERT_TRUE(sa.Store(77, 9));
  ASSERT_TRUE(WaitWritten(*a_, 9));
  EXPECT_EQ(sb.Lookup(77, 9), 9u);
  // Shard 0 stops answering for 2.5 s.
  RedisCli(cluster_->shard(0).port(), {"CLIENT", "PAUSE", "2500", "ALL"});
  for (int i = 0; i < 4; ++i) {
    uint64_t got = 0;
    auto took = Timed([&] { got = sb.Lookup(77, 9); });
    EXPECT_LT(took.count(), 1500) << "lookup " << i << " must be bounded by the remote timeout";
    EXPECT_LE(got, 9u);
    bool exact = false;
    took = Timed([&] { got = sb.Retrieve(77 + 1000 * (i + 1), 3, &exact); });
    EXPECT_LT(took.count(), 1500);
  }
  // The local tier on A serves on regardless.
  EXPECT_EQ(sa.Lookup(77, 9), 9u);
  EXPECT_TRUE(WaitFor([&] { return sb.Lookup(77, 9) == 9u; }, milliseconds(6000))) << "back after the pause";
  EXPECT_GE(Metric(*b_, "kvt_io_errors_total", {"tier=\"remote\""}), 1);
}

TEST_F(SharedClusterTest, ResetConnectionsAreReopenedTransparently) {
  StartPair("reset:");
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  ASSERT_TRUE(sa.Store(5, 6));
  ASSERT_TRUE(WaitWritten(*a_, 6));
  EXPECT_EQ(sb.Lookup(5, 6), 6u);  // B now holds pooled connections to every shard
  for (size_t s = 0; s < cluster_->size(); ++s) {
    RedisCli(cluster_->shard(s).port(), {"CLIENT", "KILL", "TYPE", "normal"});
  }
  EXPECT_EQ(sb.Lookup(5, 6), 6u) << "a reset pooled connection is retried once on a fresh one";
  bool exact = false;
  EXPECT_EQ(sb.Retrieve(5, 6, &exact), 6u);
  EXPECT_TRUE(exact);
  EXPECT_GE(Metric(*b_, "kvt_remote_reconnects_total"), 1);
  // A's write-behind connections were reset too; new writes still land.
  ASSERT_TRUE(sa.Store(6, 3));
  EXPECT_TRUE(WaitWritten(*a_, 9));
}

// Faults that change the cluster itself get a cluster of their own.
class OwnClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
    ASSERT_TRUE(cluster_.Start(3));
    RemoteDaemonOptions o;
    o.endpoints = cluster_.endpoints();
    a_ = StartRemoteDaemon(dir_, "a", o);
    b_ = StartRemoteDaemon(dir_, "b", o);
    ASSERT_TRUE(a_ && b_);
    ASSERT_TRUE(WaitFor([&] { return Metric(*a_, "kvt_remote_up") == 1 && Metric(*b_, "kvt_remote_up") == 1; },
                        milliseconds(5000)));
  }
  void TearDown() override {
    for (auto* d : {&a_, &b_}) {
      if (*d && (*d)->Alive()) {
        EXPECT_EQ((*d)->Stop(), 0) << (*d)->Log();
      }
    }
    cluster_.Stop();
  }
  RedisClusterFixture cluster_;
  TempDir dir_;
  std::unique_ptr<DaemonProcess> a_, b_;
};

TEST_F(OwnClusterTest, ShardKilledMidStreamGivesBoundedMissesAndLocalServiceGoesOn) {
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  uint64_t after_kill_remote_chunks = 0;
  int64_t slowest = 0;
  for (int i = 0; i < 30; ++i) {
    if (i == 12) cluster_.shard(2).Kill();
    uint64_t seed = 3000 + i;
    slowest = std::max<int64_t>(slowest, Timed([&] { EXPECT_TRUE(sa.Store(seed, 6)); }).count());
    EXPECT_EQ(sa.Lookup(seed, 6), 6u) << "A serves what it stored from its host tier";
    if (i >= 3) {
      uint64_t old = seed - 3;
      bool exact = false;
      uint64_t got = 0;
      slowest = std::max<int64_t>(slowest, Timed([&] { got = sb.Retrieve(old, 6, &exact); }).count());
      EXPECT_TRUE(exact) << "stream step " << i;
      if (i >= 15) after_kill_remote_chunks += got;
    }
    std::this_thread::sleep_for(milliseconds(30));
  }
  EXPECT_LT(slowest, 1500) << "no client call may wait on a dead shard beyond the remote timeout";
  EXPECT_GT(after_kill_remote_chunks, 0u) << "the surviving shards still serve their chunks";
  EXPECT_GE(Metric(*a_, "kvt_io_errors_total", {"tier=\"remote\""}) +
                Metric(*b_, "kvt_io_errors_total", {"tier=\"remote\""}) +
                Metric(*a_, "kvt_remote_writes_dropped_total", {"reason=\"unavailable\""}),
            1);
  EXPECT_TRUE(a_->Alive() && b_->Alive());
}

TEST_F(OwnClusterTest, ReshardedSlotsAreFollowedThroughMovedAndTheMapIsRefreshed) {
  Session sa, sb;
  ASSERT_TRUE(sa.Open(*a_));
  ASSERT_TRUE(sb.Open(*b_));
  for (uint64_t p = 0; p < 4; ++p) ASSERT_TRUE(sa.Store(800 + p, 6));
  ASSERT_TRUE(WaitFor([&] { return Metric(*a_, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= 24; },
                      milliseconds(5000)));
  // Move every slot of shard 0 to shard 1, with its keys; B still has the old map.
  auto id = [&](size_t s) {
    std::string out = RedisCli(cluster_.shard(s).port(), {"CLUSTER", "MYID"});
    return out.substr(0, out.find_first_of("\r\n"));
  };
  int rc = 0;
  std::string out = RedisCli(cluster_.shard(0).port(),
                             {"--cluster", "reshard", cluster_.shard(0).endpoint(), "--cluster-from", id(0),
                              "--cluster-to", id(1), "--cluster-slots", "16384", "--cluster-yes"},
                             &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(RedisCli(cluster_.shard(0).port(), {"DBSIZE"}).find('0') == 0) << "shard 0 must be empty now";
  for (uint64_t p = 0; p < 4; ++p) {
    bool exact = false;
    EXPECT_EQ(sb.Retrieve(800 + p, 6, &exact), 6u) << "prefix " << p;
    EXPECT_TRUE(exact);
  }
  EXPECT_GE(Metric(*b_, "kvt_remote_redirects_total", {"kind=\"moved\""}), 1);
}

// A single instance, not there when the daemon starts, with a password from the environment.
TEST(SingleInstanceTest, UnreachableAtStartupThenFoundWithPasswordNeverLogged) {
  if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
  const std::string password = "s3cret-Pa55-do-not-log";
  ::setenv("KVT_TEST_REDIS_PASSWORD", password.c_str(), 1);
  int port = FreeLoopbackPortForRedis();
  TempDir dir;
  RemoteDaemonOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(port)};
  o.extra_yaml = "  password_env: KVT_TEST_REDIS_PASSWORD\n";
  auto d = StartRemoteDaemon(dir, "d", o);
  ASSERT_NE(d, nullptr) << "the daemon starts without its Redis";
  Session s;
  ASSERT_TRUE(s.Open(*d));
  auto took = Timed([&] {
    EXPECT_TRUE(s.Store(1, 4));
    EXPECT_EQ(s.Lookup(1, 4), 4u);
    EXPECT_EQ(s.Lookup(2, 4), 0u);
  });
  EXPECT_LT(took.count(), 1500);
  EXPECT_EQ(Metric(*d, "kvt_remote_up"), 0);
  EXPECT_TRUE(WaitFor([&] { return Metric(*d, "kvt_io_errors_total", {"op=\"connect\""}) >= 1; }, milliseconds(3000)));

  RedisServer redis(port, false, {"--requirepass", password});
  ASSERT_TRUE(redis.Start());
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_remote_up") == 1; }, milliseconds(8000))) << d->Log();
  ASSERT_TRUE(s.Store(3, 4));
  EXPECT_TRUE(WaitFor([&] { return Metric(*d, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= 4; },
                      milliseconds(5000)));
  EXPECT_NE(RedisCli(port, {"-a", password, "--no-auth-warning", "DBSIZE"}).find('4'), std::string::npos);
  EXPECT_EQ(d->Stop(), 0);
  EXPECT_EQ(d->Log().find(password), std::string::npos) << "the password must never be logged";
  EXPECT_NE(d->Log().find("password set"), std::string::npos);
}

TEST(SingleInstanceTest, FullRedisDropsWritesWithMetricsAndTheDaemonServesLocally) {
  if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
  RedisServer redis(FreeLoopbackPortForRedis(), false, {"--maxmemory", "3mb", "--maxmemory-policy", "noeviction"});
  ASSERT_TRUE(redis.Start());
  TempDir dir;
  RemoteDaemonOptions o;
  o.endpoints = {redis.endpoint()};
  auto d = StartRemoteDaemon(dir, "d", o);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_remote_up") == 1; }, milliseconds(5000)));
  Session s;
  ASSERT_TRUE(s.Open(*d));
  int64_t slowest = 0;
  for (uint64_t p = 0; p < 64; ++p) {  // 64 x 8 x 4 KiB = 2 MiB of KV, far past what Redis has left
    slowest = std::max<int64_t>(slowest, Timed([&] { EXPECT_TRUE(s.Store(10 + p, 8)); }).count());
  }
  EXPECT_LT(slowest, 1000) << "a store never waits on Redis";
  EXPECT_TRUE(WaitFor([&] { return Metric(*d, "kvt_remote_writes_dropped_total", {"reason=\"oom\""}) >= 1; },
                      milliseconds(5000)));
  EXPECT_GE(Metric(*d, "kvt_io_errors_total", {"tier=\"remote\"", "op=\"write\""}), 1);
  for (uint64_t p = 0; p < 64; p += 9) {
    bool exact = false;
    EXPECT_EQ(s.Retrieve(10 + p, 8, &exact), 8u);
    EXPECT_TRUE(exact);
  }
  EXPECT_TRUE(d->Alive());
}

}  // namespace
}  // namespace kvt::testing
