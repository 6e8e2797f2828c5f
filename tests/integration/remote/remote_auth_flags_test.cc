// The remote tier's credentials and command-line flags against a real redis-server on loopback:
// an ACL user whose password comes from an environment variable (and appears in no log), a wrong
// password refused at start-up with a clear error, `--remote-*` flags overriding the file's
// `remote:` mapping, and bad flag values refused before anything starts.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/integration/remote/remote_test_util.h"

namespace kvt::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kAdminPassword[] = "adm1n-Pa55-do-not-log";
constexpr char kUserPassword[] = "kvt1er-Pa55-do-not-log";
constexpr char kWrongPassword[] = "wr0ng-Pa55-do-not-log";

// A single instance whose default user needs kAdminPassword, with an ACL user `kvtier` allowed
// only the commands the remote tier sends, only on keys under `acl:`.
class AclRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisInstalled()) GTEST_SKIP() << "redis-server/redis-cli not installed: remote tier tests skipped";
    redis_ = std::make_unique<RedisServer>(FreeLoopbackPortForRedis(), false,
                                           std::vector<std::string>{"--requirepass", kAdminPassword});
    ASSERT_TRUE(redis_->Start());
    std::string out = Admin({"ACL", "SETUSER", "kvtier", "on", std::string(">") + kUserPassword, "resetkeys", "~acl:*",
                             "-@all", "+get", "+set", "+exists", "+del", "+asking", "+cluster|slots"});
    ASSERT_EQ(out.substr(0, 2), "OK") << out;
  }
  std::string Admin(std::vector<std::string> args) {
    args.insert(args.begin(), {"-a", kAdminPassword, "--no-auth-warning"});
    return RedisCli(redis_->port(), args);
  }
  // Every log and output line the daemon wrote must be free of every password.
  static void ExpectNoPassword(const std::string& log) {
    for (const char* p : {kAdminPassword, kUserPassword, kWrongPassword}) {
      EXPECT_EQ(log.find(p), std::string::npos) << "a password was logged";
    }
  }
  std::unique_ptr<RedisServer> redis_;
  TempDir dir_;
};

TEST_F(AclRedisTest, AclUserWithPasswordFromTheEnvironmentWritesAndReadsAndIsNeverLogged) {
  ::setenv("KVT_TEST_ACL_PASSWORD", kUserPassword, 1);
  RemoteDaemonOptions o;
  o.endpoints = {redis_->endpoint()};
  o.key_prefix = "acl:";
  o.extra_yaml = "  user: kvtier\n  password_env: KVT_TEST_ACL_PASSWORD\n";
  auto d = StartRemoteDaemon(dir_, "d", o);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_remote_up") == 1; }, milliseconds(5000))) << d->Log();
  Session s;
  ASSERT_TRUE(s.Open(*d));
  ASSERT_TRUE(s.Store(41, 5));
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= 5; },
                      milliseconds(5000)))
      << d->Log();
  EXPECT_EQ(FirstLineOf(Admin({"DBSIZE"})), "5");
  EXPECT_EQ(Metric(*d, "kvt_remote_writes_dropped_total"), 0);
  // Written as the ACL user: its key pattern admits only acl:*, and it made every one of them.
  EXPECT_EQ(Admin({"--scan", "--pattern", "acl:*"}).empty(), false);
  // A second daemon with the same user reads the chunks back (GET and EXISTS as `kvtier`).
  auto e = StartRemoteDaemon(dir_, "e", o);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Metric(*e, "kvt_remote_up") == 1; }, milliseconds(5000)));
  Session t;
  ASSERT_TRUE(t.Open(*e));
  bool exact = false;
  EXPECT_EQ(t.Retrieve(41, 5, &exact), 5u);
  EXPECT_TRUE(exact);
  EXPECT_EQ(d->Stop(), 0);
  EXPECT_EQ(e->Stop(), 0);
  EXPECT_NE(d->Log().find("user kvtier | password set"), std::string::npos) << d->Log();
  ExpectNoPassword(d->Log());
  ExpectNoPassword(e->Log());
}

TEST_F(AclRedisTest, WrongPasswordIsAClearErrorAtStartUpThatNamesNoPassword) {
  ::setenv("KVT_TEST_ACL_WRONG", kWrongPassword, 1);
  RemoteDaemonOptions o;
  o.endpoints = {redis_->endpoint()};
  o.key_prefix = "acl:";
  o.extra_yaml = "  user: kvtier\n  password_env: KVT_TEST_ACL_WRONG\n";
  DaemonProcess p(RemoteDaemonProcessOptions(dir_, "wrong", o));
  auto took = Timed([&] { EXPECT_FALSE(p.Start()) << "the daemon must refuse to start with refused credentials"; });
  EXPECT_LT(took.count(), 5000);
  const std::string log = p.Log();
  EXPECT_NE(log.find("PERMISSION_DENIED"), std::string::npos) << log;
  EXPECT_NE(log.find("AUTH as 'kvtier' refused by " + redis_->endpoint()), std::string::npos) << log;
  EXPECT_NE(log.find("WRONGPASS"), std::string::npos) << log;
  ExpectNoPassword(log);
  EXPECT_EQ(FirstLineOf(Admin({"PING"})), "PONG") << "Redis itself is untouched";
}

TEST_F(AclRedisTest, RemoteFlagsOverrideTheConfigFile) {
  ::setenv("KVT_TEST_ACL_PASSWORD", kUserPassword, 1);
  ::setenv("KVT_TEST_ACL_WRONG", kWrongPassword, 1);
  RemoteDaemonOptions o;
  // The file says: another (dead) endpoint, the wrong password, another prefix, a tiny pool.
  o.endpoints = {"127.0.0.1:1"};
  o.key_prefix = "file:";
  o.extra_yaml = "  password_env: KVT_TEST_ACL_WRONG\n  pool_size: 1\n  ttl_ms: 0\n";
  o.extra_args = {"--remote-endpoints", redis_->endpoint(), "--remote-user", "kvtier", "--remote-password-env",
                  "KVT_TEST_ACL_PASSWORD", "--remote-key-prefix", "acl:flags:", "--remote-ttl-ms", "600000",
                  "--remote-pool-size", "3", "--remote-timeout-ms", "700", "--remote-connect-timeout-ms", "300"};
  auto d = StartRemoteDaemon(dir_, "flags", o);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_remote_up") == 1; }, milliseconds(5000))) << d->Log();
  Session s;
  ASSERT_TRUE(s.Open(*d));
  ASSERT_TRUE(s.Store(77, 3));
  ASSERT_TRUE(WaitFor([&] { return Metric(*d, "kvt_chunks_stored_total", {"tier=\"remote\""}) >= 3; },
                      milliseconds(5000)))
      << d->Log();
  std::string keys = Admin({"--scan", "--pattern", "acl:flags:*"});
  EXPECT_EQ(std::count(keys.begin(), keys.end(), '\n'), 3) << keys;
  std::string first = FirstLineOf(keys);
  int64_t ttl = std::stoll(FirstLineOf(Admin({"PTTL", first})));
  EXPECT_GT(ttl, 500000) << "--remote-ttl-ms 600000 sets the expiry";
  EXPECT_LE(ttl, 600000);
  EXPECT_EQ(d->Stop(), 0);
  EXPECT_NE(d->Log().find("prefix 'acl:flags:' | ttl 600000 ms | pool 3 | timeout 700 ms"), std::string::npos)
      << d->Log();
  ExpectNoPassword(d->Log());
}

// No Redis needed: nothing is started.
TEST(RemoteFlagsTest, BadRemoteFlagValuesAreRefusedWithTheFlagNamed) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--remote-pool-size", "zero"}, "--remote-pool-size: 'zero' is not a whole number in 1-256"},
      {{"--remote-pool-size", "0"}, "--remote-pool-size: '0'"},
      {{"--remote-timeout-ms", "-5"}, "--remote-timeout-ms: '-5'"},
      {{"--remote-ttl-ms", "1h"}, "--remote-ttl-ms: '1h'"},
      {{"--remote-endpoints", "127.0.0.1:70000"}, "--remote-endpoints: remote endpoint '127.0.0.1:70000'"},
      {{"--remote-endpoints", "localhost"}, "remote endpoint 'localhost' is not HOST:PORT"},
      {{"--remote-admission", "sometimes"}, "--remote-admission must be all, leading or none"},
      {{"--remote-password-env", "NOT-A-NAME"}, "--remote-password-env: 'NOT-A-NAME'"},
      {{"--remote-write-queue", "lots"}, "--remote-write-queue"},
      {{"--remote-backoff-min-ms", "900", "--remote-backoff-max-ms", "100"}, "backoff_min_ms <= backoff_max_ms"},
  };
  for (const Case& c : cases) {
    DaemonOptions o;
    o.extra_args = c.args;
    DaemonProcess p(o);
    EXPECT_FALSE(p.Start()) << c.args[0];
    EXPECT_NE(p.Log().find(c.says), std::string::npos) << c.args[0] << ": " << p.Log();
  }
}

}  // namespace
}  // namespace kvt::testing
