// The NVMe tier through a real daemon and libkvtier: a round trip of more than the host tier
// holds, and the crash test (SIGKILL during a heavy store stream, restart, every persisted chunk
// back bit-exact, never a wrong byte).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "tests/integration/core/client_fixture.h"

namespace kvt::testing {
namespace {

constexpr uint32_t kTokensPerChunk = 64;   // 2*2*16*64*2*2 = 16 KiB chunks... see Layout()
constexpr uint32_t kChunksPerPrefix = 8;
constexpr uint32_t kPrefixTokens = kTokensPerChunk * kChunksPerPrefix;
// 128 KiB prefixes: the crash test stores at most 100 MiB, well inside the 192 MiB NVMe tier, so
// no persisted chunk is evicted for capacity.
constexpr uint64_t kMaxPrefixes = 800;

kvt_layout_t Layout() { return SmallLayout("nvme-model", kTokensPerChunk); }

DaemonOptions NvmeDaemon(std::vector<std::string> extra = {}) {
  DaemonOptions o;
  o.host_capacity = "16MiB";
  o.extra_args = {"--nvme-capacity", "192MiB", "--nvme-segment-size", "4MiB", "--nvme-staging", "32MiB"};
  for (auto& e : extra) o.extra_args.push_back(e);
  return o;
}

// Retrieves prefix `seed`; returns the tokens covered; fails the test on any wrong byte.
uint64_t RetrieveChecked(kvt::Namespace& ns, uint64_t seed) {
  auto tokens = Tokens(seed, kPrefixTokens);
  const uint64_t bytes = kvt_namespace_chunk_bytes(ns.get()) * kChunksPerPrefix;
  std::vector<char> out(bytes, 0);
  uint64_t got = 0;
  auto r = ns.Retrieve(tokens.data(), tokens.size(), out.data(), out.size(), &got);
  EXPECT_TRUE(r) << r.message;
  auto want = Kv(seed, bytes);
  uint64_t good_bytes = got / kTokensPerChunk * kvt_namespace_chunk_bytes(ns.get());
  EXPECT_EQ(0, std::memcmp(out.data(), want.data(), good_bytes)) << "wrong bytes for prefix " << seed;
  return got;
}

TEST(NvmeIntegration, RoundTripOfMoreThanTheHostTierHolds) {
  DaemonProcess daemon(NvmeDaemon());
  ASSERT_TRUE(daemon.Start()) << daemon.Log();
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon.socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(Layout(), &ns));
  const uint64_t prefix_bytes = kvt_namespace_chunk_bytes(ns.get()) * kChunksPerPrefix;
  const uint64_t prefixes = (48ull << 20) / prefix_bytes;  // 48 MiB through a 16 MiB host tier
  for (uint64_t s = 0; s < prefixes; ++s) {
    auto t = Tokens(s, kPrefixTokens);
    auto kv = Kv(s, prefix_bytes);
    ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size()));
    // Write-back drops what the staging pool cannot hold rather than slow a store down; a
    // persist now and then lets it catch up (and is the engine's way to apply back-pressure).
    if (s % 64 == 63) {
      ASSERT_EQ(kvt_persist(client.get(), -1), KVT_STATUS_OK) << kvt_last_error_message();
    }
  }
  for (uint64_t s = 0; s < prefixes; ++s) ASSERT_EQ(RetrieveChecked(ns, s), kPrefixTokens) << s;
  kvt_daemon_stats_t st{};
  st.struct_size = sizeof st;
  ASSERT_TRUE(client.Stats(&st));
  EXPECT_GT(st.nvme_chunks, 0u);
  EXPECT_EQ(st.nvme_capacity_bytes, 192ull << 20);
  EXPECT_EQ(kvt_persist(client.get(), -1), KVT_STATUS_OK) << kvt_last_error_message();
}

TEST(NvmeIntegration, PersistWithoutNvmeTierIsUnsupported) {
  DaemonProcess daemon(NvmeDaemon({"--nvme", "off"}));
  ASSERT_TRUE(daemon.Start()) << daemon.Log();
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon.socket_path(), &client));
  EXPECT_EQ(kvt_persist(client.get(), -1), KVT_STATUS_UNSUPPORTED);
}

TEST(NvmeIntegration, SigkillDuringAStoreStreamLosesNothingPersisted) {
  DaemonProcess daemon(NvmeDaemon({"--nvme-flush-interval-ms", "100"}));
  std::mt19937 rng(12345);
  std::set<uint64_t> persisted;
  uint64_t next_seed = 0;
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(daemon.Start()) << daemon.Log();
    {
      // Everything persisted so far is back, bit-exact (the host tier is empty after a restart).
      kvt::Client client;
      ASSERT_TRUE(Connect(daemon.socket_path(), &client));
      kvt::Namespace ns;
      ASSERT_TRUE(client.OpenNamespace(Layout(), &ns));
      for (uint64_t s : persisted) {
        ASSERT_EQ(RetrieveChecked(ns, s), kPrefixTokens) << "persisted prefix " << s << "\n" << daemon.Log();
      }
      // Unpersisted prefixes may be there or not, but never wrong (RetrieveChecked checks).
      for (uint64_t s = 0; s < next_seed; s += 7) RetrieveChecked(ns, s);
    }
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::set<uint64_t> newly_persisted;
    std::thread writer([&] {
      kvt::Client client;
      if (!Connect(daemon.socket_path(), &client)) return;
      kvt::Namespace ns;
      if (!client.OpenNamespace(Layout(), &ns)) return;
      const uint64_t prefix_bytes = kvt_namespace_chunk_bytes(ns.get()) * kChunksPerPrefix;
      std::vector<uint64_t> since;
      while (!stop && next_seed < kMaxPrefixes) {
        uint64_t s = next_seed++;
        auto t = Tokens(s, kPrefixTokens);
        auto kv = Kv(s, prefix_bytes);
        if (!ns.Store(t.data(), t.size(), kv.data(), kv.size())) return;  // the daemon died
        since.push_back(s);
        if (since.size() == 16) {
          if (kvt_persist(client.get(), 10'000'000'000) != KVT_STATUS_OK) return;
          std::lock_guard lock(mu);
          newly_persisted.insert(since.begin(), since.end());
          since.clear();
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 700));
    daemon.Kill();  // SIGKILL, mid-stream
    stop = true;
    writer.join();
    persisted.insert(newly_persisted.begin(), newly_persisted.end());
  }
  EXPECT_GT(persisted.size(), 16u);
  ASSERT_TRUE(daemon.Start()) << daemon.Log();
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon.socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(Layout(), &ns));
  for (uint64_t s : persisted) {
    ASSERT_EQ(RetrieveChecked(ns, s), kPrefixTokens) << "persisted prefix " << s << "\n" << daemon.Log();
  }
}

}  // namespace
}  // namespace kvt::testing
