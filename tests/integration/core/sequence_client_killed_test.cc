// Issue 7: "a client killed during a step frees its sequence". A client process opens a sequence,
// attaches it to its daemon session and decodes until SIGKILL; the daemon must stop counting the
// sequence once the session is gone, keep serving everyone else, and report a live sequence of
// another client unchanged.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "include/kvt/kvt.h"
#include "tests/integration/core/client_fixture.h"

namespace kvt::testing {
namespace {

constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=3,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 kivi bits=2,group=32,residual=64\n"
    "layer 1 sparse budget=96,sinks=4,recent=32,channels=8\n"
    "layer 2 full\n";
constexpr int kRow = 2 * 64, kQueryRow = 8 * 64, kPrompt = 400;

// A sequence with a prompt in every layer, attached to `client`; nullptr on failure.
kvt_sequence_t* OpenAttachedSequence(kvt_client_t* client, std::mt19937& rng) {
  kvt_sequence_t* s = nullptr;
  if (kvt_sequence_open(kPlan, &s) != KVT_STATUS_OK) return nullptr;
  if (kvt_sequence_attach(s, client) != KVT_STATUS_OK) {
    kvt_sequence_close(s);
    return nullptr;
  }
  std::normal_distribution<float> nd;
  std::vector<float> k(kPrompt * kRow), v(k.size());
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (uint32_t l = 0; l < 3; ++l) {
    if (kvt_sequence_append(s, l, k.data(), v.data(), kPrompt) != KVT_STATUS_OK) {
      kvt_sequence_close(s);
      return nullptr;
    }
  }
  return s;
}

// Child: decode steps forever (until SIGKILL) with an attached sequence.
int DecodeForever(void* p) {
  const char* socket = static_cast<const char*>(p);
  kvt::Client client;
  if (!Connect(socket, &client, "victim")) return 10;
  std::mt19937 rng(11);
  kvt_sequence_t* s = OpenAttachedSequence(client.get(), rng);
  if (s == nullptr) return 11;
  std::normal_distribution<float> nd;
  std::vector<float> kt(kRow), vt(kRow), q(kQueryRow), out(kQueryRow);
  for (;;) {
    for (auto& x : kt) x = nd(rng);
    for (auto& x : vt) x = nd(rng);
    for (auto& x : q) x = nd(rng);
    for (uint32_t l = 0; l < 3; ++l) {
      if (kvt_sequence_append(s, l, kt.data(), vt.data(), 1) != KVT_STATUS_OK) return 12;
      if (kvt_sequence_attend(s, l, q.data(), out.data()) != KVT_STATUS_OK) return 13;
    }
  }
}

uint64_t AttachedSequences(kvt::Client& client) {
  kvt_daemon_stats_t st{};
  if (!client.Stats(&st)) return UINT64_MAX;
  return st.sequences;
}

// Polls the daemon until it counts `want` attached sequences (up to 5 s).
bool WaitForSequences(kvt::Client& client, uint64_t want) {
  for (int i = 0; i < 500; ++i) {
    if (AttachedSequences(client) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(SequenceClientKilled, TheDaemonForgetsItsSequenceAndServesTheRest) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.Start()) << daemon.Log();
  kvt::Client survivor;
  ASSERT_TRUE(Connect(daemon.socket_path(), &survivor, "survivor"));
  std::mt19937 rng(3);
  kvt_sequence_t* mine = OpenAttachedSequence(survivor.get(), rng);
  ASSERT_NE(mine, nullptr) << kvt_last_error_message();
  ASSERT_TRUE(WaitForSequences(survivor, 1)) << AttachedSequences(survivor);

  for (int round = 0; round < 3; ++round) {
    const pid_t victim = ForkChild(DecodeForever, const_cast<char*>(daemon.socket_path().c_str()));
    ASSERT_TRUE(WaitForSequences(survivor, 2)) << "round " << round << ": the victim's sequence never showed";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // mid-step, some of the time
    ::kill(victim, SIGKILL);
    EXPECT_EQ(WaitChild(victim), 128 + SIGKILL) << "the victim stopped before it was killed";
    EXPECT_TRUE(WaitForSequences(survivor, 1)) << "round " << round << ": still counting "
                                               << AttachedSequences(survivor);
  }

  // The survivor's own sequence and the block plane still work.
  std::vector<float> q(kQueryRow, 0.5f), out(kQueryRow);
  for (uint32_t l = 0; l < 3; ++l) EXPECT_EQ(kvt_sequence_attend(mine, l, q.data(), out.data()), KVT_STATUS_OK);
  kvt::Namespace ns;
  ASSERT_TRUE(survivor.OpenNamespace(SmallLayout(), &ns));
  auto t = Tokens(1, 4 * ns.tokens_per_chunk());
  auto kv = Kv(1, 4 * ns.chunk_bytes());
  ASSERT_TRUE(ns.Store(t.data(), t.size(), kv.data(), kv.size()));
  uint64_t matched = 0;
  ASSERT_TRUE(ns.Lookup(t.data(), t.size(), &matched));
  EXPECT_EQ(matched, t.size());

  kvt_sequence_close(mine);
  EXPECT_TRUE(WaitForSequences(survivor, 0)) << AttachedSequences(survivor);
  EXPECT_TRUE(daemon.Alive());
  EXPECT_EQ(daemon.Stop(), 0) << daemon.Log();
}

}  // namespace
}  // namespace kvt::testing
