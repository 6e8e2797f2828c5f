// The GPU tier where there is none: a daemon without a pool (the default), or one asked for a
// pool on a machine without a GPU or driver, starts and serves the block plane as before, says
// why the tier is off, and answers the GPU calls with UNSUPPORTED. Also the flags' parsing and
// --print-config. Runs everywhere (CI has no GPU); the tier itself is tested by
// tests/gpu/gpu_tier_gpu_test.cc.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "include/kvt/kvt.h"
#include "tests/integration/core/client_fixture.h"
#include "tests/support/daemon_process.h"

namespace kvt::testing {
namespace {

// Runs kv-tierd with `args`; its exit status and stdout+stderr.
std::pair<int, std::string> RunDaemon(const std::string& args) {
  std::string cmd = BinDir() + "/kv-tierd " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(GpuTierFlags, PrintConfigShowsThePoolAndBadSizesAreRefused) {
  auto [rc, out] = RunDaemon("--print-config --gpu-pool-bytes 2GiB --gpu-device 1");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("gpu_pool_bytes: 2147483648\n"), std::string::npos) << out;
  EXPECT_NE(out.find("gpu_device: 1\n"), std::string::npos) << out;
  std::tie(rc, out) = RunDaemon("--print-config");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("gpu_pool_bytes: 0 (no GPU tier)"), std::string::npos) << out;
  std::tie(rc, out) = RunDaemon("--print-config --gpu-pool-bytes lots");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("--gpu-pool-bytes"), std::string::npos) << out;
}

// Stores and reads back a prefix, then checks the GPU calls answer `want` (UNSUPPORTED without a
// tier) and that the stats report no GPU capacity.
void ServeWithoutGpuTier(DaemonProcess& d) {
  kvt::Client client;
  kvt::Result opened = Connect(d.socket_path(), &client);
  ASSERT_TRUE(opened) << opened.message;
  kvt_layout_t l = SmallLayout("gpu-absent");
  kvt_namespace_t* ns = nullptr;
  ASSERT_EQ(kvt_namespace_open(client.get(), &l, &ns), KVT_STATUS_OK) << kvt_last_error_message();
  const auto tokens = Tokens(5, 4 * 16);
  const auto kv = Kv(5, 4 * kvt_namespace_chunk_bytes(ns));
  uint64_t n = 0;
  ASSERT_EQ(kvt_block_store(ns, tokens.data(), tokens.size(), kv.data(), kv.size(), &n), KVT_STATUS_OK);
  EXPECT_EQ(n, 4u);

  kvt_gpu_pool_t pool{};
  pool.struct_size = sizeof pool;
  EXPECT_EQ(kvt_gpu_pool_map(client.get(), &pool), KVT_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(kvt_last_error_message()).find("GPU tier"), std::string::npos) << kvt_last_error_message();
  EXPECT_EQ(pool.device_base, nullptr);
  uint64_t offsets[4] = {};
  n = 99;
  EXPECT_EQ(kvt_block_gpu_pin(ns, tokens.data(), tokens.size(), offsets, 4, &n), KVT_STATUS_UNSUPPORTED);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(kvt_block_gpu_unpin(ns, tokens.data(), tokens.size(), &n), KVT_STATUS_UNSUPPORTED);

  std::vector<char> out(kv.size());
  ASSERT_EQ(kvt_block_retrieve(ns, tokens.data(), tokens.size(), out.data(), out.size(), &n), KVT_STATUS_OK);
  EXPECT_EQ(n, tokens.size());
  EXPECT_EQ(out, kv);
  kvt_daemon_stats_t s{};
  s.struct_size = sizeof s;
  ASSERT_EQ(kvt_daemon_stats(client.get(), &s), KVT_STATUS_OK);
  EXPECT_EQ(s.gpu_capacity_bytes, 0u);
  EXPECT_EQ(s.gpu_chunks, 0u);
  EXPECT_EQ(s.host_chunks, 4u);
  kvt_namespace_close(ns);
}

TEST(GpuTierAbsent, ADaemonWithoutAPoolServesAndRefusesGpuCalls) {
  DaemonProcess d;
  ASSERT_TRUE(d.Start()) << d.Log();
  ServeWithoutGpuTier(d);
  EXPECT_NE(d.Log().find("gpu tier off (gpu_pool_bytes is 0)"), std::string::npos) << d.Log();
}

TEST(GpuTierAbsent, APoolAskedForWithoutAGpuLeavesTheDaemonServing) {
  DaemonProcess d(DaemonOptions{.extra_args = {"--gpu-pool-bytes", "4MiB"}});
  ASSERT_TRUE(d.Start()) << d.Log();
  if (d.Log().find("gpu tier off:") == std::string::npos) {
    GTEST_SKIP() << "this machine has a usable GPU: the tier is on (tests/gpu covers it)";
  }
  ServeWithoutGpuTier(d);
}

}  // namespace
}  // namespace kvt::testing
