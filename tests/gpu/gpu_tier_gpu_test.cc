// The GPU tier end to end on a real device: a real kv-tierd (found through $KVT_BIN_DIR) with a
// GPU pool, a client in this process that stores chunks, pins them on the GPU, maps the pool
// through CUDA IPC and reads the bytes back with cudaMemcpy from the device pointers; then
// eviction from the GPU puts chunks the host tier had dropped back into the host tier, bit-exact.
// CUDA IPC needs two processes: the daemon exports the pool, this process opens it.
// Skipped (exit 77) without a CUDA device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "include/kvt/kvt.h"
#include "tests/support/daemon_process.h"

namespace {

using kvt::testing::DaemonOptions;
using kvt::testing::DaemonProcess;

constexpr uint32_t kTokensPerChunk = 64;
constexpr uint64_t kChunkBytes = 2ull * 2 * kTokensPerChunk * 4 * 64 * 2;  // 128 KiB
constexpr uint64_t kPoolBytes = 4ull << 20;                                  // 32 chunks
constexpr uint64_t kPoolChunks = kPoolBytes / kChunkBytes;

int Devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::vector<uint32_t> Tokens(uint32_t seed, uint64_t chunks) {
  std::vector<uint32_t> t(chunks * kTokensPerChunk);
  std::mt19937 rng(seed);
  for (auto& x : t) x = rng() % 32000;
  return t;
}

std::vector<char> Kv(uint64_t seed, uint64_t chunks) {
  std::vector<char> kv(chunks * kChunkBytes);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < kv.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&kv[i], &v, 8);
  }
  return kv;
}

std::string LastError() { return kvt_last_error_message(); }

// Chunk i of `kv` equals the bytes at device_base + offsets[i], read with cudaMemcpy.
void ExpectDeviceHolds(const kvt_gpu_pool_t& pool, const std::vector<uint64_t>& offsets, const std::vector<char>& kv) {
  ASSERT_EQ(cudaSetDevice(pool.device), cudaSuccess);
  std::vector<char> got(kChunkBytes);
  for (size_t i = 0; i < offsets.size(); ++i) {
    ASSERT_LE(offsets[i] + kChunkBytes, pool.capacity_bytes) << "chunk " << i;
    const char* src = static_cast<const char*>(pool.device_base) + offsets[i];
    cudaError_t err = cudaMemcpy(got.data(), src, kChunkBytes, cudaMemcpyDeviceToHost);
    ASSERT_EQ(err, cudaSuccess) << "cudaMemcpy of chunk " << i << ": " << cudaGetErrorString(err);
    EXPECT_EQ(std::memcmp(got.data(), kv.data() + i * kChunkBytes, kChunkBytes), 0) << "chunk " << i;
  }
}

class GpuTierGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Devices() == 0) GTEST_SKIP() << "no CUDA device";
    DaemonOptions o;
    o.host_capacity = "64MiB";
    // No NVMe tier: a chunk the host tier drops can only come back from the GPU tier.
    o.extra_args = {"--gpu-pool-bytes", std::to_string(kPoolBytes), "--nvme", "off", "--log-level", "debug"};
    daemon_ = std::make_unique<DaemonProcess>(o);
    ASSERT_TRUE(daemon_->Start()) << daemon_->Log();
    kvt_client_options_t opts;
    kvt_client_options_init(&opts);
    opts.socket_path = daemon_->socket_path().c_str();
    opts.timeout_ns = 30'000'000'000;
    ASSERT_EQ(kvt_client_open(&opts, &client_), KVT_STATUS_OK) << LastError();
    kvt_layout_t l;
    kvt_layout_init(&l);
    l.model_id = "gpu-tier-test";
    l.num_layers = 2;
    l.num_kv_heads = 4;
    l.head_dim = 64;
    l.dtype = KVT_DTYPE_F16;
    l.tokens_per_chunk = kTokensPerChunk;
    ASSERT_EQ(kvt_namespace_open(client_, &l, &ns_), KVT_STATUS_OK) << LastError();
    ASSERT_EQ(kvt_namespace_chunk_bytes(ns_), kChunkBytes);
  }
  void TearDown() override {
    kvt_namespace_close(ns_);
    kvt_client_close(client_);
    if (daemon_ && HasFailure()) std::cerr << "daemon log:\n" << daemon_->Log();
  }
  void Store(const std::vector<uint32_t>& t, const std::vector<char>& kv) {
    uint64_t stored = 0;
    ASSERT_EQ(kvt_block_store(ns_, t.data(), t.size(), kv.data(), kv.size(), &stored), KVT_STATUS_OK) << LastError();
    ASSERT_EQ(stored, kv.size() / kChunkBytes);
  }
  kvt_daemon_stats_t Stats() {
    kvt_daemon_stats_t s{};
    s.struct_size = sizeof s;
    EXPECT_EQ(kvt_daemon_stats(client_, &s), KVT_STATUS_OK) << LastError();
    return s;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  kvt_client_t* client_ = nullptr;
  kvt_namespace_t* ns_ = nullptr;
};

TEST_F(GpuTierGpuTest, PinnedChunksReadBackFromTheMappedPoolAndEvictionKeepsTheBytes) {
  const uint64_t a_chunks = kPoolChunks / 2, b_chunks = kPoolChunks;
  const auto ta = Tokens(1, a_chunks), tb = Tokens(2, b_chunks);
  const auto kva = Kv(11, a_chunks), kvb = Kv(22, b_chunks);
  Store(ta, kva);

  kvt_gpu_pool_t pool{};
  pool.struct_size = sizeof pool;
  ASSERT_EQ(kvt_gpu_pool_map(client_, &pool), KVT_STATUS_OK) << LastError() << "\n" << daemon_->Log();
  ASSERT_NE(pool.device_base, nullptr);
  ASSERT_EQ(pool.capacity_bytes, kPoolBytes);

  // Promote A to the GPU and read it through the device pointers.
  std::vector<uint64_t> off_a(a_chunks);
  uint64_t pinned = 0;
  ASSERT_EQ(kvt_block_gpu_pin(ns_, ta.data(), ta.size(), off_a.data(), off_a.size(), &pinned), KVT_STATUS_OK)
      << LastError();
  ASSERT_EQ(pinned, ta.size());
  ExpectDeviceHolds(pool, off_a, kva);
  kvt_daemon_stats_t s = Stats();
  EXPECT_EQ(s.gpu_capacity_bytes, kPoolBytes);
  EXPECT_EQ(s.gpu_chunks, a_chunks);
  EXPECT_EQ(s.gpu_pinned_chunks, a_chunks);
  EXPECT_EQ(s.gpu_used_bytes, a_chunks * kChunkBytes);

  // The host tier drops everything: A now lives on the GPU only, and is still found and read.
  uint64_t evicted = 0;
  ASSERT_EQ(kvt_daemon_evict(client_, UINT64_MAX, &evicted), KVT_STATUS_OK) << LastError();
  EXPECT_EQ(evicted, a_chunks);
  EXPECT_EQ(Stats().host_chunks, 0u);
  uint64_t matched = 0;
  ASSERT_EQ(kvt_block_lookup(ns_, ta.data(), ta.size(), &matched), KVT_STATUS_OK) << LastError();
  EXPECT_EQ(matched, ta.size());

  // B needs the whole pool: once A is unpinned, every A chunk is evicted from the GPU, and since
  // the host tier no longer holds them they are copied back into it.
  Store(tb, kvb);
  uint64_t unpinned = 0;
  ASSERT_EQ(kvt_block_gpu_unpin(ns_, ta.data(), ta.size(), &unpinned), KVT_STATUS_OK) << LastError();
  EXPECT_EQ(unpinned, ta.size());
  std::vector<uint64_t> off_b(b_chunks);
  ASSERT_EQ(kvt_block_gpu_pin(ns_, tb.data(), tb.size(), off_b.data(), off_b.size(), &pinned), KVT_STATUS_OK)
      << LastError();
  ASSERT_EQ(pinned, tb.size());
  ExpectDeviceHolds(pool, off_b, kvb);
  s = Stats();
  EXPECT_EQ(s.gpu_chunks, b_chunks);
  EXPECT_EQ(s.host_chunks, a_chunks + b_chunks);  // A demoted from the GPU, B stored

  std::vector<char> back(kva.size());
  uint64_t got = 0;
  ASSERT_EQ(kvt_block_retrieve(ns_, ta.data(), ta.size(), back.data(), back.size(), &got), KVT_STATUS_OK)
      << LastError();
  ASSERT_EQ(got, ta.size());
  EXPECT_EQ(std::memcmp(back.data(), kva.data(), kva.size()), 0);

  // A full pool of pinned chunks refuses more, and says so.
  const auto tc = Tokens(3, 1);
  const auto kvc = Kv(33, 1);
  Store(tc, kvc);
  uint64_t off_c = 0;
  EXPECT_EQ(kvt_block_gpu_pin(ns_, tc.data(), tc.size(), &off_c, 1, &pinned), KVT_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(pinned, 0u);
  ASSERT_EQ(kvt_block_gpu_unpin(ns_, tb.data(), tb.size(), &unpinned), KVT_STATUS_OK) << LastError();
  EXPECT_EQ(unpinned, tb.size());
  EXPECT_EQ(Stats().gpu_pinned_chunks, 0u);
}

}  // namespace
