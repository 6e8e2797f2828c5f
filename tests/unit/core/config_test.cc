#include "daemon/config.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <fstream>

#include "daemon/remote_flags.h"

#include "tests/support/temp_dir.h"

namespace kvt::daemon {
namespace {

TEST(ParseByteSize, UnitsAndErrors) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("64MiB"), 64ull << 20);
  EXPECT_EQ(*ParseByteSize("4 GiB"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("1.5G"), 3ull << 29);
  EXPECT_GT(*ParseByteSize("10%"), 0u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("GiB").ok());
  EXPECT_FALSE(ParseByteSize("12 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("200%").ok());
  EXPECT_FALSE(ParseByteSize("-5M").ok());
}

TEST(Config, FileOverridesDefaultsAndRejectsUnknownKeys) {
  kvt::testing::TempDir dir;
  std::string path = dir.File("c.yaml");
  std::ofstream(path) << "host_capacity: 128MiB\nmax_clients: 7\nsocket: " << dir.File("s.sock") << "\n";
  DaemonConfig c = DefaultConfig();
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.host_capacity_bytes, 128ull << 20);
  EXPECT_EQ(c.max_clients, 7u);
  c.data_dir = dir.File("data");
  EXPECT_TRUE(ValidateConfig(c).ok());

  std::ofstream(path) << "host_capacty: 1GiB\n";  // typo
  DaemonConfig d = DefaultConfig();
  Status s = LoadConfigFile(path, &d);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("host_capacty"), std::string::npos);

  std::ofstream(path) << "host_capacity: lots\n";
  EXPECT_FALSE(LoadConfigFile(path, &d).ok());
  std::ofstream(path) << "[unclosed\n";
  EXPECT_FALSE(LoadConfigFile(path, &d).ok());
  EXPECT_EQ(LoadConfigFile(dir.File("missing.yaml"), &d).code(), StatusCode::kNotFound);
}

TEST(Config, SocketModeIsAWholeOctalModeAndSizeErrorsNameTheFile) {
  kvt::testing::TempDir dir;
  const std::string path = dir.File("c.yaml");
  DaemonConfig c = DefaultConfig();
  std::ofstream(path) << "socket_mode: \"0640\"\n";
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.socket_mode, 0640u);
  // Once stoul read these as 0 (stopping at 'x') and 0xfff: a typo passed silently.
  for (const char* bad : {"0x1ff", "0660 # group", "7777", "", "-1", "08"}) {
    std::ofstream(path) << "socket_mode: \"" << bad << "\"\n";
    const Status s = LoadConfigFile(path, &c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("socket_mode"), std::string::npos) << s.ToString();
  }
  EXPECT_EQ(c.socket_mode, 0640u);
  for (const char* yaml : {"host_capacity: 1GiBB\n", "nvme:\n  capacity: lots\n", "remote:\n  write_queue: 1XB\n"}) {
    std::ofstream(path) << yaml;
    const Status s = LoadConfigFile(path, &c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << yaml;
    EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  }
}

TEST(Config, GpuPoolIsOffByDefaultAndReadFromTheFile) {
  kvt::testing::TempDir dir;
  DaemonConfig c = DefaultConfig();
  EXPECT_EQ(c.gpu_pool_bytes, 0u);  // no GPU tier unless asked for
  EXPECT_EQ(c.gpu_device, 0);
  std::string path = dir.File("c.yaml");
  std::ofstream(path) << "gpu_pool: 8GiB\ngpu_device: 1\n";
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.gpu_pool_bytes, 8ull << 30);
  EXPECT_EQ(c.gpu_device, 1);
  c.data_dir = dir.File("data");
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.gpu_device = -1;
  EXPECT_EQ(ValidateConfig(c).code(), StatusCode::kInvalidArgument);
  std::ofstream(path) << "gpu_pool: lots\n";
  EXPECT_FALSE(LoadConfigFile(path, &c).ok());
}

TEST(Config, AllowedGroupsResolveToGids) {
  kvt::testing::TempDir dir;
  std::string path = dir.File("c.yaml");
  std::ofstream(path) << "allowed_gids: [4242]\nallowed_groups: [root]\n";  // root is gid 0 everywhere
  DaemonConfig c = DefaultConfig();
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.allowed_gids, (std::vector<uint32_t>{4242, 0}));

  std::ofstream(path) << "allowed_groups: [no-such-group-kvt]\n";
  DaemonConfig d = DefaultConfig();
  Status s = LoadConfigFile(path, &d);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("no-such-group-kvt"), std::string::npos) << s.message();
}

TEST(Config, ValidationCatchesUnusableSettings) {
  kvt::testing::TempDir dir;
  DaemonConfig c = DefaultConfig();
  c.data_dir = dir.File("data");
  c.socket_path = dir.File("s.sock");
  c.host_capacity_bytes = 1024;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = DefaultConfig();
  c.data_dir = dir.File("data");
  c.socket_path = "/nonexistent-dir/s.sock";
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.socket_path = dir.File("s.sock");
  c.default_ring_entries = 100;  // not a power of two
  EXPECT_FALSE(ValidateConfig(c).ok());
}

// Parses `args` as kv-tierd's --remote-* flags and applies them to `config`.
Status ParseRemoteFlags(std::vector<std::string> args, RemoteConfig* config) {
  CLI::App app;
  RemoteFlags flags;
  AddRemoteFlags(app, &flags);
  std::vector<std::string> argv = {"kv-tierd"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  try {
    app.parse(static_cast<int>(raw.size()), raw.data());
  } catch (const CLI::ParseError& e) {
    return InvalidArgument(e.what());
  }
  return ApplyRemoteFlags(flags, config);
}

TEST(RemoteFlags, OverrideTheFileKeyByKeyAndLeaveTheRestAlone) {
  kvt::testing::TempDir dir;
  std::string path = dir.File("c.yaml");
  std::ofstream(path) << "remote:\n  endpoints: [\"10.0.0.1:7000\"]\n  key_prefix: \"file:\"\n  password: from-file\n"
                      << "  pool_size: 2\n  writer_threads: 3\n  ttl_ms: 5\n";
  DaemonConfig c = DefaultConfig();
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  ASSERT_TRUE(ParseRemoteFlags({"--remote-endpoints", "127.0.0.1:7000,redis-b:7001", "--remote-user", "kvtier",
                                "--remote-password-env", "MY_REDIS_PW", "--remote-key-prefix", "flag:",
                                "--remote-ttl-ms", "60000", "--remote-pool-size", "8", "--remote-timeout-ms", "250",
                                "--remote-connect-timeout-ms", "100", "--remote-backoff-min-ms", "10",
                                "--remote-backoff-max-ms", "900", "--remote-write-queue", "64MiB",
                                "--remote-admission", "leading"},
                               &c.remote)
                  .ok());
  const RemoteConfig& r = c.remote;
  EXPECT_EQ(r.endpoints, (std::vector<std::string>{"127.0.0.1:7000", "redis-b:7001"}));
  EXPECT_EQ(r.user, "kvtier");
  EXPECT_EQ(r.password_env, "MY_REDIS_PW");
  EXPECT_EQ(r.password, "") << "--remote-password-env wins over a password in the file";
  EXPECT_EQ(r.key_prefix, "flag:");
  EXPECT_EQ(r.ttl_ms, 60000u);
  EXPECT_EQ(r.pool_size, 8u);
  EXPECT_EQ(r.timeout_ms, 250u);
  EXPECT_EQ(r.connect_timeout_ms, 100u);
  EXPECT_EQ(r.backoff_min_ms, 10u);
  EXPECT_EQ(r.backoff_max_ms, 900u);
  EXPECT_EQ(r.write_queue_bytes, 64ull << 20);
  EXPECT_EQ(r.admission, "leading");
  EXPECT_EQ(r.writer_threads, 3u) << "a key with no flag keeps the file's value";
  c.data_dir = dir.File("data");
  c.socket_path = dir.File("s.sock");
  EXPECT_TRUE(ValidateConfig(c).ok());

  ASSERT_TRUE(ParseRemoteFlags({"--remote-endpoints", "off"}, &c.remote).ok());
  EXPECT_TRUE(c.remote.endpoints.empty()) << "'off' turns the remote tier off";
  RemoteConfig untouched;
  ASSERT_TRUE(ParseRemoteFlags({}, &untouched).ok());
  EXPECT_EQ(untouched.key_prefix, RemoteConfig().key_prefix);
  EXPECT_EQ(untouched.pool_size, RemoteConfig().pool_size);
}

TEST(RemoteFlags, BadValuesNameTheFlagAndChangeNothing) {
  const std::vector<std::vector<std::string>> bad = {
      {"--remote-pool-size", "0"},          {"--remote-pool-size", "257"},
      {"--remote-pool-size", "four"},       {"--remote-pool-size", "-1"},
      {"--remote-pool-size", "4 "},         {"--remote-writer-threads", "65"},
      {"--remote-ttl-ms", "1h"},            {"--remote-ttl-ms", "99999999999999999999999"},
      {"--remote-timeout-ms", "0"},         {"--remote-connect-timeout-ms", "4294967296"},
      {"--remote-backoff-min-ms", ""},      {"--remote-endpoints", "localhost"},
      {"--remote-endpoints", ":6379"},      {"--remote-endpoints", "h:0"},
      {"--remote-endpoints", "h:65536"},    {"--remote-endpoints", "a:1,,b:2"},
      {"--remote-endpoints", "a:1,"},       {"--remote-endpoints", "h:63x9"},
      {"--remote-password-env", "1ABC"},    {"--remote-password-env", "MY-PW"},
      {"--remote-password-env", ""},        {"--remote-key-prefix", ""},
      {"--remote-admission", "most"},       {"--remote-write-queue", "lots"},
  };
  for (const auto& args : bad) {
    RemoteConfig r;
    r.key_prefix = "before:";
    r.endpoints = {"10.0.0.1:7000"};
    Status s = ParseRemoteFlags(args, &r);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << args[0] << " " << args[1];
    EXPECT_NE(s.message().find(args[0]), std::string::npos) << s.message();
    EXPECT_EQ(r.key_prefix, "before:");
    EXPECT_EQ(r.endpoints, (std::vector<std::string>{"10.0.0.1:7000"}));
  }
  // A flag that parses but leaves an unusable whole is caught with the rest of the configuration.
  kvt::testing::TempDir dir;
  DaemonConfig c = DefaultConfig();
  c.data_dir = dir.File("data");
  c.socket_path = dir.File("s.sock");
  ASSERT_TRUE(ParseRemoteFlags({"--remote-backoff-min-ms", "900", "--remote-backoff-max-ms", "100"}, &c.remote).ok());
  Status s = ValidateConfig(c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("backoff_min_ms <= backoff_max_ms"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kvt::daemon
