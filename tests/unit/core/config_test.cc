#include "daemon/config.h"

#include <gtest/gtest.h>

#include <fstream>

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

}  // namespace
}  // namespace kvt::daemon
