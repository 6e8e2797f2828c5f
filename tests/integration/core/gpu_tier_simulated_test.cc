// The GPU tier through the real daemon and client library on any machine: kv-tierd with
// --gpu-pool-simulated keeps the pool in host memory, so pinning on the GPU, the offsets, the
// statistics, GPU-only chunks found by lookup and retrieve, and eviction from the GPU back into
// the host tier run exactly as on a GPU; only the pool cannot be mapped (tests/gpu/
// gpu_tier_gpu_test.cc runs the same scenario on a device and reads the bytes through CUDA IPC).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "include/kvt/kvt.h"
#include "tests/integration/core/client_fixture.h"
#include "tests/support/daemon_process.h"

namespace kvt::testing {
namespace {

constexpr uint32_t kTokensPerChunk = 64;
constexpr uint64_t kChunkBytes = 2ull * 2 * kTokensPerChunk * 4 * 64 * 2;  // 128 KiB
constexpr uint64_t kPoolBytes = 4ull << 20;                                  // 32 chunks
constexpr uint64_t kPoolChunks = kPoolBytes / kChunkBytes;

class GpuTierSimulatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(DaemonOptions{
        .extra_args = {"--gpu-pool-bytes", std::to_string(kPoolBytes), "--gpu-pool-simulated", "--nvme", "off"}});
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    kvt::Result opened = Connect(daemon_->socket_path(), &client_);
    ASSERT_TRUE(opened) << opened.message;
    kvt_layout_t l = SmallLayout("gpu-simulated", kTokensPerChunk);
    l.num_kv_heads = 4;
    l.head_dim = 64;
    ASSERT_EQ(kvt_namespace_open(client_.get(), &l, &ns_), KVT_STATUS_OK) << kvt_last_error_message();
    ASSERT_EQ(kvt_namespace_chunk_bytes(ns_), kChunkBytes);
  }
  void TearDown() override { kvt_namespace_close(ns_); }
  void Store(const std::vector<uint32_t>& t, const std::vector<char>& kv) {
    uint64_t stored = 0;
    ASSERT_EQ(kvt_block_store(ns_, t.data(), t.size(), kv.data(), kv.size(), &stored), KVT_STATUS_OK)
        << kvt_last_error_message();
    ASSERT_EQ(stored, kv.size() / kChunkBytes);
  }
  kvt_daemon_stats_t Stats() {
    kvt_daemon_stats_t s{};
    s.struct_size = sizeof s;
    EXPECT_EQ(kvt_daemon_stats(client_.get(), &s), KVT_STATUS_OK) << kvt_last_error_message();
    return s;
  }
  static void ExpectDistinctExtents(const std::vector<uint64_t>& offsets) {
    std::set<uint64_t> seen;
    for (uint64_t o : offsets) {
      EXPECT_EQ(o % kChunkBytes, 0u);
      EXPECT_LE(o + kChunkBytes, kPoolBytes);
      EXPECT_TRUE(seen.insert(o).second) << "offset " << o << " handed out twice";
    }
  }

  std::unique_ptr<DaemonProcess> daemon_;
  kvt::Client client_;
  kvt_namespace_t* ns_ = nullptr;
};

TEST_F(GpuTierSimulatedTest, PinEvictDemoteAndRetrieveLikeOnAGpu) {
  const uint64_t a_chunks = kPoolChunks / 2, b_chunks = kPoolChunks;
  const auto ta = Tokens(1, a_chunks * kTokensPerChunk), tb = Tokens(2, b_chunks * kTokensPerChunk);
  const auto kva = Kv(11, a_chunks * kChunkBytes), kvb = Kv(22, b_chunks * kChunkBytes);
  Store(ta, kva);

  kvt_gpu_pool_t pool{};
  pool.struct_size = sizeof pool;
  EXPECT_EQ(kvt_gpu_pool_map(client_.get(), &pool), KVT_STATUS_UNSUPPORTED);  // simulated: nothing to map

  std::vector<uint64_t> off_a(a_chunks);
  uint64_t pinned = 0;
  ASSERT_EQ(kvt_block_gpu_pin(ns_, ta.data(), ta.size(), off_a.data(), off_a.size(), &pinned), KVT_STATUS_OK)
      << kvt_last_error_message();
  ASSERT_EQ(pinned, ta.size());
  ExpectDistinctExtents(off_a);
  kvt_daemon_stats_t s = Stats();
  EXPECT_EQ(s.gpu_capacity_bytes, kPoolBytes);
  EXPECT_EQ(s.gpu_chunks, a_chunks);
  EXPECT_EQ(s.gpu_pinned_chunks, a_chunks);
  EXPECT_EQ(s.gpu_used_bytes, a_chunks * kChunkBytes);

  // Pinning again returns the same places (a second pin each).
  std::vector<uint64_t> again(a_chunks);
  ASSERT_EQ(kvt_block_gpu_pin(ns_, ta.data(), ta.size(), again.data(), again.size(), &pinned), KVT_STATUS_OK);
  EXPECT_EQ(again, off_a);
  uint64_t unpinned = 0;
  ASSERT_EQ(kvt_block_gpu_unpin(ns_, ta.data(), ta.size(), &unpinned), KVT_STATUS_OK);
  EXPECT_EQ(unpinned, ta.size());
  EXPECT_EQ(Stats().gpu_pinned_chunks, a_chunks);  // one pin each left

  uint64_t evicted = 0;
  ASSERT_EQ(kvt_daemon_evict(client_.get(), UINT64_MAX, &evicted), KVT_STATUS_OK) << kvt_last_error_message();
  EXPECT_EQ(evicted, a_chunks);
  EXPECT_EQ(Stats().host_chunks, 0u);
  uint64_t matched = 0;
  ASSERT_EQ(kvt_block_lookup(ns_, ta.data(), ta.size(), &matched), KVT_STATUS_OK);
  EXPECT_EQ(matched, ta.size());  // on the GPU only, still found
  std::vector<char> back(kva.size());
  uint64_t got = 0;
  ASSERT_EQ(kvt_block_retrieve(ns_, ta.data(), ta.size(), back.data(), back.size(), &got), KVT_STATUS_OK);
  ASSERT_EQ(got, ta.size());
  EXPECT_EQ(back, kva);  // read from the GPU tier

  Store(tb, kvb);
  ASSERT_EQ(kvt_block_gpu_unpin(ns_, ta.data(), ta.size(), &unpinned), KVT_STATUS_OK);
  EXPECT_EQ(unpinned, ta.size());
  std::vector<uint64_t> off_b(b_chunks);
  ASSERT_EQ(kvt_block_gpu_pin(ns_, tb.data(), tb.size(), off_b.data(), off_b.size(), &pinned), KVT_STATUS_OK)
      << kvt_last_error_message();
  ASSERT_EQ(pinned, tb.size());
  ExpectDistinctExtents(off_b);
  s = Stats();
  EXPECT_EQ(s.gpu_chunks, b_chunks);
  EXPECT_EQ(s.host_chunks, a_chunks + b_chunks);  // A demoted from the GPU, B stored

  std::fill(back.begin(), back.end(), 0);
  ASSERT_EQ(kvt_block_retrieve(ns_, ta.data(), ta.size(), back.data(), back.size(), &got), KVT_STATUS_OK);
  ASSERT_EQ(got, ta.size());
  EXPECT_EQ(back, kva);  // now from the host tier

  const auto tc = Tokens(3, kTokensPerChunk);
  const auto kvc = Kv(33, kChunkBytes);
  Store(tc, kvc);
  uint64_t off_c = 0;
  EXPECT_EQ(kvt_block_gpu_pin(ns_, tc.data(), tc.size(), &off_c, 1, &pinned), KVT_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(pinned, 0u);
  ASSERT_EQ(kvt_block_gpu_unpin(ns_, tb.data(), tb.size(), &unpinned), KVT_STATUS_OK);
  EXPECT_EQ(unpinned, tb.size());
  EXPECT_EQ(Stats().gpu_pinned_chunks, 0u);
}

TEST_F(GpuTierSimulatedTest, ADisconnectingClientGivesItsGpuPinsBack) {
  const auto t = Tokens(4, 4 * kTokensPerChunk);
  const auto kv = Kv(44, 4 * kChunkBytes);
  Store(t, kv);
  {
    kvt::Client other;
    ASSERT_TRUE(Connect(daemon_->socket_path(), &other));
    kvt_layout_t l = SmallLayout("gpu-simulated", kTokensPerChunk);
    l.num_kv_heads = 4;
    l.head_dim = 64;
    kvt_namespace_t* ns = nullptr;
    ASSERT_EQ(kvt_namespace_open(other.get(), &l, &ns), KVT_STATUS_OK);
    std::vector<uint64_t> off(4);
    uint64_t pinned = 0;
    ASSERT_EQ(kvt_block_gpu_pin(ns, t.data(), t.size(), off.data(), off.size(), &pinned), KVT_STATUS_OK);
    EXPECT_EQ(pinned, t.size());
    EXPECT_EQ(Stats().gpu_pinned_chunks, 4u);
    kvt_namespace_close(ns);
  }  // the other client disconnects
  kvt_daemon_stats_t s{};
  for (int i = 0; i < 200; ++i) {  // the daemon notices the hang-up asynchronously
    s = Stats();
    if (s.gpu_pinned_chunks == 0) break;
    ::usleep(10'000);
  }
  EXPECT_EQ(s.gpu_pinned_chunks, 0u);
  EXPECT_EQ(s.gpu_chunks, 4u);  // still resident, now evictable
}

// The C++ layer (kvt.hpp) over the same calls: offsets, pins and the error of an unmappable pool.
TEST_F(GpuTierSimulatedTest, CppWrappers) {
  const uint64_t chunks = 3;
  const auto t = Tokens(5, chunks * kTokensPerChunk);
  Store(t, Kv(55, chunks * kChunkBytes));
  kvt_gpu_pool_t pool{};
  const kvt::Result mapped = client_.MapGpuPool(&pool);
  EXPECT_EQ(mapped.status, KVT_STATUS_UNSUPPORTED);
  EXPECT_FALSE(mapped.message.empty());
  kvt::Namespace ns;
  kvt_layout_t l = SmallLayout("gpu-simulated", kTokensPerChunk);
  l.num_kv_heads = 4;
  l.head_dim = 64;
  ASSERT_TRUE(client_.OpenNamespace(l, &ns));
  std::vector<uint64_t> offsets(chunks, ~0ull);
  uint64_t pinned = 0;
  ASSERT_TRUE(ns.GpuPin(t.data(), t.size(), offsets.data(), 2, &pinned));  // at most 2 chunks
  EXPECT_EQ(pinned, 2 * kTokensPerChunk);
  EXPECT_EQ(offsets[2], ~0ull);  // untouched
  ExpectDistinctExtents({offsets[0], offsets[1]});
  EXPECT_EQ(Stats().gpu_pinned_chunks, 2u);
  uint64_t unpinned = 0;
  ASSERT_TRUE(ns.GpuUnpin(t.data(), t.size(), &unpinned));
  EXPECT_EQ(unpinned, 2 * kTokensPerChunk);
  EXPECT_EQ(Stats().gpu_pinned_chunks, 0u);
  EXPECT_EQ(ns.GpuPin(nullptr, 5, offsets.data(), 1).status, KVT_STATUS_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace kvt::testing
