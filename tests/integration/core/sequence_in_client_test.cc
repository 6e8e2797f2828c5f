// Issue 7: "Sparse layers: full-precision K and V, plus a transposed key copy for channel rows, in
// the daemon's pinned arena, mapped into the client." A sequence opened in a client
// (kvt_sequence_open_in_client) keeps its host tier in that client's shared heap — the memfd the
// daemon created and maps — and computes bit for bit what a process-local sequence computes; its
// host-tier bytes show as heap in use and come back at close and suspend; a heap too small fails
// the append that cannot grow with RESOURCE_EXHAUSTED and loses nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/internal/abi_handles.h"
#include "gpu/host_memory.h"
#include "include/kvt/kvt.h"
#include "tests/integration/core/client_fixture.h"

namespace kvt::testing {
namespace {

constexpr int kKvHeads = 2, kHeadDim = 64, kQHeads = 8;
constexpr int kRow = kKvHeads * kHeadDim, kQueryRow = kQHeads * kHeadDim;
constexpr uint64_t kRowBytes = kRow * 2;  // fp16

// Every kind with a host tier, both sparse scorers, and resident kinds beside them.
constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=5,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 full\n"
    "layer 1 offload\n"
    "layer 2 kivi bits=2,group=32,residual=64\n"
    "layer 3 sparse budget=96,sinks=4,recent=32,channels=8\n"
    "layer 4 sparse budget=96,sinks=4,recent=32,channels=8,scorer=sketch,sketch_bits=2,sketch_group=32\n";
constexpr int kLayers = 5;

// Offload and sparse only: what a small heap fills with.
constexpr char kHostTierPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=2,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 offload\n"
    "layer 1 sparse budget=96,sinks=4,recent=32,channels=8\n";

uint64_t HeapUsed(kvt::Client& client) { return client.get()->connection->heap_used_bytes(); }

std::vector<float> Random(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

bool AllZero(const std::vector<float>& v) {
  for (float x : v) {
    if (x != 0.0f) return false;
  }
  return true;
}

// Appends the same rows to both sequences' layer `l`.
void AppendBoth(kvt::Sequence& a, kvt::Sequence& b, uint32_t l, const std::vector<float>& k,
                const std::vector<float>& v, uint32_t tokens) {
  auto ra = a.Append(l, k.data(), v.data(), tokens);
  ASSERT_TRUE(ra) << ra.message;
  auto rb = b.Append(l, k.data(), v.data(), tokens);
  ASSERT_TRUE(rb) << rb.message;
}

// Attends both on `q` and expects the same bits (and not zeros).
void ExpectSameAttention(kvt::Sequence& a, kvt::Sequence& b, uint32_t l, const std::vector<float>& q) {
  std::vector<float> oa(kQueryRow), ob(kQueryRow, -1.0f);
  auto ra = a.Attend(l, q.data(), oa.data());
  ASSERT_TRUE(ra) << ra.message;
  auto rb = b.Attend(l, q.data(), ob.data());
  ASSERT_TRUE(rb) << rb.message;
  EXPECT_FALSE(AllZero(oa)) << "layer " << l;
  EXPECT_EQ(std::memcmp(oa.data(), ob.data(), oa.size() * sizeof(float)), 0) << "layer " << l;
}

uint64_t DaemonSequences(kvt::Client& client) {
  kvt_daemon_stats_t st{};
  if (!client.Stats(&st)) return UINT64_MAX;
  return st.sequences;
}

// What the daemon reports for the host tiers in this daemon's clients' heaps (kvtierctl stats,
// kvt_sequence_host_tier_heap_bytes).
uint64_t DaemonHostTierHeapBytes(kvt::Client& client) {
  kvt_daemon_stats_t st{};
  if (!client.Stats(&st)) return UINT64_MAX;
  return st.sequence_host_tier_heap_bytes;
}

bool WaitForSequences(kvt::Client& client, uint64_t want) {
  for (int i = 0; i < 500; ++i) {
    if (DaemonSequences(client) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class SequenceInClient : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon_.Start()) << daemon_.Log(); }
  void TearDown() override { EXPECT_EQ(daemon_.Stop(), 0) << daemon_.Log(); }
  DaemonProcess daemon_;
};

TEST_F(SequenceInClient, AttendsBitForBitLikeAProcessLocalSequenceWithItsHostTierInTheHeap) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_.socket_path(), &client, "arena"));
  kvt::Sequence local, shared;
  ASSERT_TRUE(kvt::Sequence::Open(kPlan, -1, &local));
  const uint64_t before = HeapUsed(client);
  auto r = kvt::Sequence::OpenInClient(client, kPlan, -1, &shared);
  ASSERT_TRUE(r) << r.message;
  EXPECT_TRUE(WaitForSequences(client, 1)) << "the in-client sequence reports to the daemon";
  const uint64_t opened = HeapUsed(client);  // + the session's figures block (once per client)

  std::mt19937 rng(7);
  constexpr int kPrompt = 600, kSteps = 40;
  for (uint32_t l = 0; l < kLayers; ++l) {
    AppendBoth(local, shared, l, Random(rng, kPrompt * kRow), Random(rng, kPrompt * kRow), kPrompt);
  }
  for (int step = 0; step < kSteps; ++step) {  // decode past the first doubling of every array
    for (uint32_t l = 0; l < kLayers; ++l) {
      const auto q = Random(rng, kQueryRow);
      if (l + 1 < kLayers) {  // the published pipeline's prefetch of the next layer's channel rows
        const auto hint = Random(rng, kQueryRow);
        ASSERT_TRUE(local.HintNext(l + 1, hint.data()));
        ASSERT_TRUE(shared.HintNext(l + 1, hint.data()));
      }
      AppendBoth(local, shared, l, Random(rng, kRow), Random(rng, kRow), 1);
      ExpectSameAttention(local, shared, l, q);
    }
    if (::testing::Test::HasFatalFailure()) return;
  }

  // Offload K+V, two sparse layers' K+V and transposed keys (capacity >= 256 tokens).
  const uint64_t tokens = kPrompt + kSteps;
  const uint64_t host_tier = 2 * tokens * kRowBytes + 2 * (2 * tokens * kRowBytes + tokens * kRowBytes);
  const uint64_t in_heap = HeapUsed(client) - opened;
  EXPECT_GE(in_heap, host_tier);
  EXPECT_LE(in_heap, 2 * host_tier + 16 * 4096) << "capacity doubles, no more";
  EXPECT_EQ(DaemonHostTierHeapBytes(client), in_heap) << "the daemon's figures show the heap the host tier holds";

  shared.Close();
  EXPECT_EQ(HeapUsed(client), opened) << "closing gives every host-tier range back";
  EXPECT_EQ(DaemonHostTierHeapBytes(client), 0u);
  EXPECT_LE(opened - before, 4096u);
  EXPECT_TRUE(WaitForSequences(client, 0));
}

TEST_F(SequenceInClient, AHeapTooSmallFailsTheAppendThatCannotGrowAndLosesNothing) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_.socket_path(), &client, "small", /*heap_bytes=*/1 << 20));
  kvt::Sequence local, shared;
  ASSERT_TRUE(kvt::Sequence::Open(kHostTierPlan, -1, &local));
  auto r = kvt::Sequence::OpenInClient(client, kHostTierPlan, -1, &shared);
  ASSERT_TRUE(r) << r.message;

  std::mt19937 rng(9);
  constexpr uint32_t kChunk = 64;
  for (uint32_t l = 0; l < 2; ++l) {
    bool exhausted = false;
    for (int chunk = 0; chunk < 64 && !exhausted; ++chunk) {
      const auto k = Random(rng, kChunk * kRow), v = Random(rng, kChunk * kRow);
      auto rs = shared.Append(l, k.data(), v.data(), kChunk);
      if (!rs) {
        EXPECT_EQ(rs.status, KVT_STATUS_RESOURCE_EXHAUSTED) << rs.message;
        EXPECT_NE(rs.message.find("1048576 bytes"), std::string::npos) << rs.message;
        EXPECT_NE(rs.message.find("heap_bytes"), std::string::npos) << rs.message;
        exhausted = true;
        break;
      }
      ASSERT_TRUE(local.Append(l, k.data(), v.data(), kChunk));
    }
    ASSERT_TRUE(exhausted) << "layer " << l << ": a 1 MiB heap held 4096 tokens";
    // What was stored still attends, exactly as the sequence that holds the same tokens.
    for (int i = 0; i < 3; ++i) ExpectSameAttention(local, shared, l, Random(rng, kQueryRow));
  }
  // Decode steps that fit in the capacity already reserved still go on.
  const auto k = Random(rng, kRow), v = Random(rng, kRow);
  if (shared.Append(0, k.data(), v.data(), 1)) {
    ASSERT_TRUE(local.Append(0, k.data(), v.data(), 1));
    ExpectSameAttention(local, shared, 0, Random(rng, kQueryRow));
  }
}

TEST_F(SequenceInClient, SuspendGivesTheHeapBackAndResumeIsBitExact) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_.socket_path(), &client, "suspend"));
  kvt::Sequence local, shared;
  ASSERT_TRUE(kvt::Sequence::Open(kPlan, -1, &local));
  auto r = kvt::Sequence::OpenInClient(client, kPlan, -1, &shared);
  ASSERT_TRUE(r) << r.message;
  const uint64_t opened = HeapUsed(client);

  std::mt19937 rng(13);
  constexpr int kPrompt = 500;
  for (uint32_t l = 0; l < kLayers; ++l) {
    AppendBoth(local, shared, l, Random(rng, kPrompt * kRow), Random(rng, kPrompt * kRow), kPrompt);
  }
  std::vector<std::vector<float>> queries, before(kLayers, std::vector<float>(kQueryRow));
  for (uint32_t l = 0; l < kLayers; ++l) {
    queries.push_back(Random(rng, kQueryRow));
    ASSERT_TRUE(shared.Attend(l, queries[l].data(), before[l].data()));
  }
  EXPECT_GT(HeapUsed(client), opened);

  void* image = nullptr;
  uint64_t bytes = 0;
  auto s = shared.Suspend(&image, &bytes);
  ASSERT_TRUE(s) << s.message;
  EXPECT_EQ(HeapUsed(client), opened) << "a suspended sequence holds no heap";
  EXPECT_EQ(DaemonHostTierHeapBytes(client), 0u);
  auto rr = shared.Resume(image, bytes);
  kvt_sequence_image_free(image);
  ASSERT_TRUE(rr) << rr.message;
  EXPECT_GT(HeapUsed(client), opened);
  EXPECT_EQ(DaemonHostTierHeapBytes(client), HeapUsed(client) - opened);

  for (uint32_t l = 0; l < kLayers; ++l) {
    std::vector<float> after(kQueryRow);
    ASSERT_TRUE(shared.Attend(l, queries[l].data(), after.data()));
    EXPECT_EQ(std::memcmp(before[l].data(), after.data(), after.size() * sizeof(float)), 0) << "layer " << l;
    ExpectSameAttention(local, shared, l, queries[l]);
  }
  // And it keeps decoding as the local one does.
  for (uint32_t l = 0; l < kLayers; ++l) {
    AppendBoth(local, shared, l, Random(rng, kRow), Random(rng, kRow), 1);
    ExpectSameAttention(local, shared, l, Random(rng, kQueryRow));
  }
}

// Several sequences of one client, each on its own thread, share the heap's allocator: each still
// computes what its process-local twin does, and closing them all gives the heap back.
TEST_F(SequenceInClient, SequencesOnSeveralThreadsShareOneHeap) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_.socket_path(), &client, "threads"));
  const uint64_t baseline = HeapUsed(client);
  constexpr int kThreads = 3;
  std::vector<int> mismatches(kThreads, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      kvt::Sequence local, shared;
      if (!kvt::Sequence::Open(kHostTierPlan, -1, &local) ||
          !kvt::Sequence::OpenInClient(client, kHostTierPlan, -1, &shared)) {
        return;
      }
      std::mt19937 rng(100 + i);
      int bad = 0;
      for (int step = 0; step < 200; ++step) {
        const uint32_t n = step == 0 ? 300 : 1;  // a prompt, then decode through two doublings
        for (uint32_t l = 0; l < 2; ++l) {
          const auto k = Random(rng, n * kRow), v = Random(rng, n * kRow), q = Random(rng, kQueryRow);
          std::vector<float> oa(kQueryRow), ob(kQueryRow);
          if (!local.Append(l, k.data(), v.data(), n) || !shared.Append(l, k.data(), v.data(), n) ||
              !local.Attend(l, q.data(), oa.data()) || !shared.Attend(l, q.data(), ob.data())) {
            return;
          }
          bad += std::memcmp(oa.data(), ob.data(), oa.size() * sizeof(float)) != 0;
        }
      }
      mismatches[i] = bad;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(mismatches[i], 0) << "thread " << i << " (-1: a call failed)";
  EXPECT_LE(HeapUsed(client) - baseline, 4096u) << "every sequence gave its heap back (the figures block stays)";
}

TEST_F(SequenceInClient, RefusesBadArguments) {
  kvt::Client client;
  ASSERT_TRUE(Connect(daemon_.socket_path(), &client, "bad"));
  kvt_sequence_t* s = nullptr;
  EXPECT_EQ(kvt_sequence_open_in_client(nullptr, kPlan, -1, &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_open_in_client(client.get(), nullptr, -1, &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_open_in_client(client.get(), "not a plan", -1, &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kvt_sequence_open_in_client(client.get(), kPlan, -2, &s), KVT_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(s, nullptr);
  if (gpu::DeviceCount() == 0) {  // a GPU sequence needs a device to register the heap with
    EXPECT_EQ(kvt_sequence_open_in_client(client.get(), kPlan, 0, &s), KVT_STATUS_UNSUPPORTED)
        << kvt_last_error_message();
    EXPECT_EQ(s, nullptr);
  }
  // The client still serves a CPU sequence afterwards.
  ASSERT_EQ(kvt_sequence_open_in_client(client.get(), kPlan, -1, &s), KVT_STATUS_OK) << kvt_last_error_message();
  kvt_sequence_close(s);
}

}  // namespace
}  // namespace kvt::testing
