// The block plane end to end: a real kv-tierd process, real client processes through libkvtier.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/core/client_fixture.h"

namespace kvt::testing {
namespace {

class BlockPlaneTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::string& capacity = "256MiB", std::vector<std::string> extra_args = {}) {
    DaemonOptions o;
    o.host_capacity = capacity;
    o.extra_args = std::move(extra_args);
    daemon_ = std::make_unique<DaemonProcess>(o);
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
  }
  void SetUp() override { StartDaemon(); }
  void TearDown() override {
    if (daemon_ && daemon_->Alive()) {
      EXPECT_EQ(daemon_->Stop(), 0) << "daemon must exit cleanly on SIGTERM\n" << daemon_->Log();
    }
  }
  std::unique_ptr<DaemonProcess> daemon_;
};

struct RoundTripArgs {
  const char* socket;
  int worker;
  int prefixes;
  int chunks_per_prefix;
};

// A client process: stores its share of prefixes, then reads every one back and compares.
int RoundTripWorker(void* p) {
  auto* a = static_cast<RoundTripArgs*>(p);
  kvt::Client client;
  if (!Connect(a->socket, &client)) return 10;
  kvt::Namespace ns;
  if (!client.OpenNamespace(SmallLayout(), &ns)) return 11;
  const uint64_t cb = ns.chunk_bytes();
  const size_t n = a->chunks_per_prefix * ns.tokens_per_chunk();
  for (int i = 0; i < a->prefixes; ++i) {
    uint64_t seed = a->worker * 100000 + i;
    auto t = Tokens(seed, n);
    auto kv = Kv(seed, a->chunks_per_prefix * cb);
    uint64_t stored = 0;
    if (!ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored)) return 12;
    if (stored != static_cast<uint64_t>(a->chunks_per_prefix)) return 13;
  }
  std::vector<char> out(a->chunks_per_prefix * cb);
  for (int i = 0; i < a->prefixes; ++i) {
    uint64_t seed = a->worker * 100000 + i;
    auto t = Tokens(seed, n);
    uint64_t got = 0;
    if (!ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got)) return 14;
    if (got != n) return 15;
    if (out != Kv(seed, out.size())) return 16;  // bit-exact
  }
  return 0;
}

TEST_F(BlockPlaneTest, TenThousandRandomChunksRoundTripBitExactAcrossProcesses) {
  // 4 processes x 250 prefixes x 10 chunks = 10,000 chunks of 4 KiB.
  std::string socket = daemon_->socket_path();
  std::vector<RoundTripArgs> args;
  for (int w = 0; w < 4; ++w) args.push_back({socket.c_str(), w, 250, 10});
  std::vector<pid_t> pids;
  for (auto& a : args) pids.push_back(ForkChild(RoundTripWorker, &a));
  for (pid_t p : pids) EXPECT_EQ(WaitChild(p), 0) << daemon_->Log();

  kvt::Client client;
  ASSERT_TRUE(Connect(socket, &client));
  kvt_daemon_stats_t stats;
  ASSERT_TRUE(client.Stats(&stats));
  EXPECT_EQ(stats.host_chunks, 10000u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(BlockPlaneTest, LongestPrefixSemantics) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  const uint32_t tpc = ns.tokens_per_chunk();
  auto t = Tokens(1, 8 * tpc + 5);  // 8 whole chunks and a partial tail
  auto kv = Kv(1, 8 * ns.chunk_bytes());
  uint64_t stored = 0;
  ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored));
  EXPECT_EQ(stored, 8u);
  uint64_t matched = 0;
  ASSERT_TRUE(ns.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, 8u * tpc);
  for (uint32_t k = 0; k < 8; ++k) {
    auto changed = t;
    changed[k * tpc + tpc / 2] += 1;
    ASSERT_TRUE(ns.Lookup(changed.data(), changed.size(), &matched));
    EXPECT_EQ(matched, k * tpc) << "a changed token in chunk " << k << " must hit exactly " << k << " chunks";
  }
  // Storing again stores nothing new.
  ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored));
  EXPECT_EQ(stored, 0u);
  // Retrieval into a smaller buffer returns the prefix that fits.
  std::vector<char> out(3 * ns.chunk_bytes() + 100);
  uint64_t got = 0;
  ASSERT_TRUE(ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got));
  EXPECT_EQ(got, 3u * tpc);
  EXPECT_EQ(0, std::memcmp(out.data(), kv.data(), 3 * ns.chunk_bytes()));
  // Removing chunk 4 onward leaves a 4-chunk prefix... removing the whole prefix leaves nothing.
  uint64_t removed = 0;
  ASSERT_TRUE(ns.Remove(t.data(), t.size(), &removed));
  EXPECT_EQ(removed, 8u);
  ASSERT_TRUE(ns.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, 0u);
}

TEST_F(BlockPlaneTest, WrongSizeGetsAReadableError) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  auto t = Tokens(2, 2 * ns.tokens_per_chunk());
  auto kv = Kv(2, 2 * ns.chunk_bytes() - 1);
  kvt::Result r = ns.Store(t.data(), t.size(), kv.data(), kv.size());
  EXPECT_EQ(r.status, KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(r.message.find("whole chunks"), std::string::npos) << r.message;
  kvt_layout_t bad = SmallLayout();
  bad.num_layers = 0;
  kvt::Namespace ns2;
  r = client.OpenNamespace(bad, &ns2);
  EXPECT_EQ(r.status, KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(r.message.find("num_layers"), std::string::npos) << r.message;
}

TEST_F(BlockPlaneTest, ZeroCopyAsyncAndBatchPaths) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  const uint64_t cb = ns.chunk_bytes();
  auto t = Tokens(3, 4 * ns.tokens_per_chunk());
  auto kv = Kv(3, 4 * cb);
  void* buf = nullptr;
  ASSERT_TRUE(client.AllocateBuffer(4 * cb, &buf));
  std::memcpy(buf, kv.data(), kv.size());
  uint64_t stored = 0;
  ASSERT_TRUE(ns.Store(t.data(), t.size(), buf, 4 * cb, &stored));
  EXPECT_EQ(stored, 4u);
  std::memset(buf, 0, 4 * cb);
  uint64_t got = 0;
  ASSERT_TRUE(ns.Retrieve(t.data(), t.size(), buf, 4 * cb, &got));
  EXPECT_EQ(got, t.size());
  EXPECT_EQ(0, std::memcmp(buf, kv.data(), kv.size()));
  client.FreeBuffer(buf);

  // Async: store, then lookup and retrieve, waited with a deadline.
  auto t2 = Tokens(4, 2 * ns.tokens_per_chunk());
  auto kv2 = Kv(4, 2 * cb);
  kvt::Op op;
  ASSERT_TRUE(ns.StoreAsync(t2.data(), t2.size(), kv2.data(), kv2.size(), &op));
  uint64_t value = 0;
  ASSERT_TRUE(op.Wait(5'000'000'000, &value));
  EXPECT_EQ(value, 2u);
  std::vector<char> out(2 * cb);
  kvt::Op rop;
  ASSERT_TRUE(ns.RetrieveAsync(t2.data(), t2.size(), out.data(), out.size(), &rop));
  kvt::Result pr;
  do {
    pr = rop.Poll(&value);
  } while (pr.status == KVT_STATUS_BUSY);
  ASSERT_TRUE(pr) << pr.message;
  EXPECT_EQ(value, t2.size());
  EXPECT_EQ(out, kv2);

  // Batch lookup over stored and unknown prefixes.
  auto t3 = Tokens(5, 2 * ns.tokens_per_chunk());
  kvt_token_span_t spans[3] = {{t.data(), t.size()}, {t2.data(), t2.size()}, {t3.data(), t3.size()}};
  uint64_t matched[3] = {9, 9, 9};
  ASSERT_EQ(kvt_block_lookup_batch(ns.get(), spans, 3, matched), KVT_STATUS_OK);
  EXPECT_EQ(matched[0], t.size());
  EXPECT_EQ(matched[1], t2.size());
  EXPECT_EQ(matched[2], 0u);
  const void* kvs[1] = {Kv(5, 2 * cb).data()};
  auto kv3 = Kv(5, 2 * cb);
  kvs[0] = kv3.data();
  uint64_t bytes[1] = {2 * cb};
  ASSERT_EQ(kvt_block_store_batch(ns.get(), &spans[2], kvs, bytes, 1, &stored), KVT_STATUS_OK);
  EXPECT_EQ(stored, 2u);
}

TEST_F(BlockPlaneTest, RequestsLargerThanTheHeapAreSplit) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client, nullptr, 1 << 20));  // a 1 MiB heap
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  const size_t chunks = 1000;  // 4 MB of KV through a 1 MiB heap
  auto t = Tokens(6, chunks * ns.tokens_per_chunk());
  auto kv = Kv(6, chunks * ns.chunk_bytes());
  uint64_t stored = 0;
  ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored));
  EXPECT_EQ(stored, chunks);
  std::vector<char> out(kv.size());
  uint64_t got = 0;
  ASSERT_TRUE(ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got));
  EXPECT_EQ(got, t.size());
  EXPECT_EQ(out, kv);
}

// The copy path streams a large request in pieces with several in flight at once; a prefix that
// diverges inside one piece must still come back as exactly the chunks before the divergence,
// whichever piece the miss falls in and however the pieces after it complete.
TEST_F(BlockPlaneTest, StreamedCopyPathReturnsExactlyThePrefixBeforeAMiss) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));  // the default heap: many pieces in flight
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  const uint32_t tpc = ns.tokens_per_chunk();
  const size_t chunks = 2500;  // ~10 MB of 4 KiB chunks: five 2 MiB pieces
  auto t = Tokens(7, chunks * tpc);
  auto kv = Kv(7, chunks * ns.chunk_bytes());
  uint64_t stored = 0;
  ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size(), &stored));
  EXPECT_EQ(stored, chunks);
  std::vector<char> out(kv.size());
  uint64_t got = 0;
  ASSERT_TRUE(ns.Retrieve(t.data(), t.size(), out.data(), out.size(), &got));
  ASSERT_EQ(got, t.size());
  ASSERT_EQ(out, kv);
  for (size_t diverge : {size_t{0}, size_t{511}, size_t{512}, size_t{1300}, chunks - 1}) {
    auto changed = t;
    changed[diverge * tpc + 1] += 1;
    std::fill(out.begin(), out.end(), 0);
    ASSERT_TRUE(ns.Retrieve(changed.data(), changed.size(), out.data(), out.size(), &got));
    EXPECT_EQ(got, diverge * tpc) << "diverging in chunk " << diverge;
    EXPECT_EQ(0, std::memcmp(out.data(), kv.data(), diverge * ns.chunk_bytes())) << "diverging in chunk " << diverge;
  }
}

// The daemon maps a client's whole region into its own page tables before serving it, so no
// request pays for page faults inside a copy (on a virtual machine a fault costs more than
// copying the page). Checked on the daemon's own accounting: the region's resident size.
TEST_F(BlockPlaneTest, DaemonMapsTheWholeClientRegionBeforeServing) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client, nullptr, 16 << 20));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));  // served by the ring thread, after the prefault
  std::ifstream smaps("/proc/" + std::to_string(daemon_->pid()) + "/smaps");
  ASSERT_TRUE(smaps.good());
  std::string line;
  bool in_region = false;
  int64_t size_kb = -1, rss_kb = -1;
  while (std::getline(smaps, line)) {
    if (line.find("memfd:kvt-client-") != std::string::npos) {
      in_region = true;
    } else if (in_region && line.rfind("Size:", 0) == 0) {
      size_kb = std::stoll(line.substr(5));
    } else if (in_region && line.rfind("Rss:", 0) == 0) {
      rss_kb = std::stoll(line.substr(4));
      break;
    }
  }
  ASSERT_GT(size_kb, 16 << 10) << "the client's region is not mapped in the daemon";
  EXPECT_EQ(rss_kb, size_kb) << "the daemon serves before mapping the whole region";
}

// The daemon counts a session before its client hears back: a status query sent the moment a
// connection opens finds its own client (it once raced the ring thread, and kvtierctl printed
// 2^64 - 1 "clients besides this one"). Earlier clients may still be counted while the daemon
// reaps them, hence at least one.
TEST_F(BlockPlaneTest, AClientIsCountedFromItsFirstRequest) {
  for (int i = 0; i < 100; ++i) {
    kvt::Client client;
    ASSERT_TRUE(Connect(daemon_->socket_path(), &client, nullptr, 1 << 20));
    kvt_daemon_stats_t s{};
    ASSERT_TRUE(client.Stats(&s));
    ASSERT_GE(s.clients, 1u) << "connection " << i << ": a status query does not see its own client";
  }
}

TEST_F(BlockPlaneTest, TenantsCannotSeeEachOthersChunks) {
  kvt::Client a, b;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &a, "tenant-a"));
  ASSERT_TRUE(Connect(daemon_->socket_path(), &b, "tenant-b"));
  kvt::Namespace na, nb;
  ASSERT_TRUE(a.OpenNamespace(SmallLayout(), &na));
  ASSERT_TRUE(b.OpenNamespace(SmallLayout(), &nb));
  auto t = Tokens(7, 4 * na.tokens_per_chunk());
  auto kv = Kv(7, 4 * na.chunk_bytes());
  ASSERT_TRUE(na.Store(t.data(), t.size(), kv.data(), kv.size()));
  uint64_t matched = 99;
  ASSERT_TRUE(nb.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, 0u);
  std::vector<char> out(kv.size());
  uint64_t got = 99;
  ASSERT_TRUE(nb.Retrieve(t.data(), t.size(), out.data(), out.size(), &got));
  EXPECT_EQ(got, 0u);
  uint64_t removed = 99;
  ASSERT_TRUE(nb.Remove(t.data(), t.size(), &removed));
  EXPECT_EQ(removed, 0u);  // b cannot remove a's chunks either
  ASSERT_TRUE(na.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, t.size());
}

TEST_F(BlockPlaneTest, TwoLayoutsNeverCollide) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace n1, n2, n3;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout("model-a"), &n1));
  ASSERT_TRUE(client.OpenNamespace(SmallLayout("model-b"), &n2));
  kvt_layout_t bf = SmallLayout("model-a");
  bf.dtype = KVT_DTYPE_BF16;  // same byte size, different dtype
  ASSERT_TRUE(client.OpenNamespace(bf, &n3));
  auto t = Tokens(8, 4 * n1.tokens_per_chunk());
  auto kv = Kv(8, 4 * n1.chunk_bytes());
  ASSERT_TRUE(n1.Store(t.data(), t.size(), kv.data(), kv.size()));
  uint64_t matched = 99;
  ASSERT_TRUE(n2.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, 0u);
  ASSERT_TRUE(n3.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, 0u);
}

class SmallCapacityTest : public BlockPlaneTest {
 protected:
  // Host-tier eviction on its own: with the NVMe tier on, evicted chunks would still be found there.
  void SetUp() override { StartDaemon("16MiB", {"--nvme", "off"}); }
};

TEST_F(SmallCapacityTest, EvictionKeepsPinnedChunksAndTheCapacity) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  const uint64_t cb = ns.chunk_bytes();
  auto pinned_t = Tokens(100, 64 * ns.tokens_per_chunk());
  auto pinned_kv = Kv(100, 64 * cb);
  ASSERT_TRUE(ns.Store(pinned_t.data(), pinned_t.size(), pinned_kv.data(), pinned_kv.size()));
  uint64_t pinned = 0;
  ASSERT_TRUE(ns.Pin(pinned_t.data(), pinned_t.size(), &pinned));
  EXPECT_EQ(pinned, pinned_t.size());
  // Store 4x the capacity.
  for (int i = 0; i < 64; ++i) {
    auto t = Tokens(200 + i, 256 * ns.tokens_per_chunk());
    auto kv = Kv(200 + i, 256 * cb);
    ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size())) << i;
  }
  kvt_daemon_stats_t s;
  ASSERT_TRUE(client.Stats(&s));
  EXPECT_LE(s.host_used_bytes, s.host_capacity_bytes);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_EQ(s.pinned_chunks, 64u);
  std::vector<char> out(pinned_kv.size());
  uint64_t got = 0;
  ASSERT_TRUE(ns.Retrieve(pinned_t.data(), pinned_t.size(), out.data(), out.size(), &got));
  EXPECT_EQ(got, pinned_t.size());
  EXPECT_EQ(out, pinned_kv);
  // The most recent prefix is still there; the first one was evicted.
  auto first = Tokens(200, 256 * ns.tokens_per_chunk());
  uint64_t matched = 0;
  ASSERT_TRUE(ns.Lookup(first.data(), first.size(), &matched));
  EXPECT_EQ(matched, 0u);
  uint64_t unpinned = 0;
  ASSERT_TRUE(ns.Unpin(pinned_t.data(), pinned_t.size(), &unpinned));
  EXPECT_EQ(unpinned, pinned_t.size());
}

int PinAndStreamForever(void* p) {
  const char* socket = static_cast<const char*>(p);
  kvt::Client client;
  if (!Connect(socket, &client, "victim")) return 10;
  kvt::Namespace ns;
  if (!client.OpenNamespace(SmallLayout(), &ns)) return 11;
  auto t = Tokens(500, 8 * ns.tokens_per_chunk());
  auto kv = Kv(500, 8 * ns.chunk_bytes());
  if (!ns.Store(t.data(), t.size(), kv.data(), kv.size())) return 12;
  if (!ns.Pin(t.data(), t.size())) return 13;
  for (uint64_t i = 0;; ++i) {  // until SIGKILL
    auto ti = Tokens(1000 + i, 4 * ns.tokens_per_chunk());
    auto kvi = Kv(1000 + i, 4 * ns.chunk_bytes());
    ns.Store(ti.data(), ti.size(), kvi.data(), kvi.size());
  }
}

TEST_F(BlockPlaneTest, ClientKilledMidStreamLeaksNothingAndOthersContinue) {
  std::string socket = daemon_->socket_path();
  kvt::Client other;
  ASSERT_TRUE(Connect(socket, &other));
  kvt::Namespace ns;
  ASSERT_TRUE(other.OpenNamespace(SmallLayout(), &ns));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread busy([&] {
    for (uint64_t i = 0; !stop; ++i) {
      auto t = Tokens(9000 + i % 50, 2 * ns.tokens_per_chunk());
      auto kv = Kv(9000 + i % 50, 2 * ns.chunk_bytes());
      if (!ns.Store(t.data(), t.size(), kv.data(), kv.size())) ++failures;
      uint64_t m = 0;
      if (!ns.Lookup(t.data(), t.size(), &m) || m != t.size()) ++failures;
    }
  });
  for (int round = 0; round < 3; ++round) {
    pid_t victim = ForkChild(PinAndStreamForever, const_cast<char*>(socket.c_str()));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(victim, SIGKILL);
    EXPECT_EQ(WaitChild(victim), 128 + SIGKILL);
  }
  // The daemon notices each death and releases the victim's pins and shared memory.
  kvt_daemon_stats_t s{};
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(other.Stats(&s));
    if (s.clients == 1 && s.pinned_chunks == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(s.clients, 1u);
  EXPECT_EQ(s.pinned_chunks, 0u);
  stop = true;
  busy.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(daemon_->Alive());
}

TEST_F(BlockPlaneTest, DaemonDeathIsADisconnectNotAHang) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_->socket_path(), &client));
  kvt::Namespace ns;
  ASSERT_TRUE(client.OpenNamespace(SmallLayout(), &ns));
  daemon_->Kill();
  auto t = Tokens(11, ns.tokens_per_chunk());
  uint64_t m;
  auto start = std::chrono::steady_clock::now();
  kvt::Result r = ns.Lookup(t.data(), t.size(), &m);
  EXPECT_EQ(r.status, KVT_STATUS_DISCONNECTED) << r.message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace kvt::testing
