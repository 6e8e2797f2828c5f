// Decode appends of host-tier layers (offload, sparse) are write-back transfers on the sequence's
// scheduler: under load a demand fetch runs before queued write-backs, a write-back the fetch needs
// is raised ahead of it (and only that one), attention sees the token just appended, and the
// outputs are those of a sequence on an idle scheduler, bit for bit.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "host/kernels/convert.h"
#include "sequence/sequence.h"

namespace kvt::sequence {
namespace {

using namespace std::chrono_literals;
using Ticket = TransferScheduler::Ticket;

constexpr int kKvHeads = 2, kHeadDim = 64, kQHeads = 8;
constexpr int kRow = kKvHeads * kHeadDim, kQRow = kQHeads * kHeadDim;
constexpr int kPrompt = 300, kSteps = 4;

// Layer 0: sparse with the sketch scorer (one demand fetch per step: the gather); 1: offload (one
// demand fetch of the whole layer); 2: sparse with channel rows fetched on demand (no hint).
constexpr char kPlan[] =
    "kvt-sequence-plan 1\n"
    "shape layers=3,q_heads=8,kv_heads=2,head_dim=64\n"
    "layer 0 sparse budget=96,sinks=4,recent=32,channels=8,scorer=sketch\n"
    "layer 1 offload\n"
    "layer 2 sparse budget=96,sinks=4,recent=32,channels=8\n";

struct Data {
  std::vector<float> k, v, q;  // [tokens][row] (shared by the layers), [steps][qrow]
  Data() {
    std::mt19937 rng(21);
    std::normal_distribution<float> nd;
    k.resize(static_cast<size_t>(kPrompt + kSteps) * kRow);
    v.resize(k.size());
    q.resize(static_cast<size_t>(kSteps) * kQRow);
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    for (auto& x : q) x = nd(rng);
  }
  const float* K(int t) const { return k.data() + static_cast<size_t>(t) * kRow; }
  const float* V(int t) const { return v.data() + static_cast<size_t>(t) * kRow; }
  const float* Q(int s) const { return q.data() + static_cast<size_t>(s) * kQRow; }
};

std::unique_ptr<Sequence> Prefilled(const Data& d, TransferScheduler* scheduler) {
  auto plan = ParsePlan(kPlan);
  EXPECT_TRUE(plan.ok());
  auto s = Sequence::Open(*plan, SequenceOptions{scheduler});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  for (int l = 0; l < 3; ++l) EXPECT_TRUE((*s)->Append(l, d.K(0), d.V(0), kPrompt).ok());
  return std::move(*s);
}

// Occupies the worker until released, so that everything submitted meanwhile queues.
class Gate {
 public:
  explicit Gate(TransferScheduler& s) : s_(s) {
    ticket_ = s.Submit(TransferPriority::kWriteBack, 0, [this] {
      running_ = true;
      while (!open_.load()) std::this_thread::sleep_for(1ms);
    });
    while (!running_.load()) std::this_thread::sleep_for(1ms);
  }
  ~Gate() { Open(); }
  void Open() {
    open_ = true;
    if (ticket_) {
      EXPECT_TRUE(s_.Wait(std::exchange(ticket_, 0)).ok());
    }
  }
  Ticket ticket() const { return ticket_; }

 private:
  TransferScheduler& s_;
  Ticket ticket_ = 0;
  std::atomic<bool> open_{false}, running_{false};
};

void WaitForDemands(TransferScheduler& s, uint64_t count) {
  for (int i = 0; i < 5000 && s.stats().count[0] < count; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(s.stats().count[0], count);
}

// Position of `t` in the scheduler's start order (-1: absent).
int Pos(const std::vector<Ticket>& order, Ticket t) {
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] == t) return static_cast<int>(i);
  }
  return -1;
}

TEST(SequenceWriteBack, DemandBeforeWriteBackUnderLoadWithUnchangedResults) {
  const Data d;
  TransferScheduler shared;
  auto a = Prefilled(d, &shared), b = Prefilled(d, &shared);
  auto twin = Prefilled(d, nullptr);  // its own, idle scheduler
  shared.Drain();
  std::vector<float> got(kQRow), want(kQRow);
  auto check = [&](int layer, int s) {
    ASSERT_TRUE(twin->Attend(layer, d.Q(s), want.data()).ok());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "layer " << layer << " step " << s;
  };
  auto append = [&](Sequence& seq, int layer, int s) {
    ASSERT_TRUE(seq.Append(layer, d.K(kPrompt + s), d.V(kPrompt + s), 1).ok());
  };

  // Step 0, layer 0 (sparse, sketch): the gather needs no write-back of this step (the new token
  // sits in the recent window), so it runs before every queued write-back, A's own included.
  {
    Gate gate(shared);
    const Ticket g = gate.ticket();
    append(*a, 0, 0);  // g + 1
    append(*b, 0, 0);  // g + 2
    append(*b, 1, 0);  // g + 3
    const Ticket probe = shared.Submit(TransferPriority::kWriteBack, 0, [] {});  // g + 4
    const uint64_t demands = shared.stats().count[0];
    Status st;
    std::thread step([&] { st = a->Attend(0, d.Q(0), got.data()); });
    WaitForDemands(shared, demands + 1);  // the gather, g + 5, is queued behind the gate
    gate.Open();
    step.join();
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_TRUE(shared.Wait(probe).ok());
    const auto order = shared.start_order();
    const int gather = Pos(order, g + 5);
    ASSERT_GE(gather, 0);
    EXPECT_EQ(gather, Pos(order, g) + 1);
    for (Ticket wb = g + 1; wb <= g + 4; ++wb) EXPECT_LT(gather, Pos(order, wb)) << wb - g;
    append(*twin, 0, 0);
    check(0, 0);
  }
  // Layer 1 (offload): its fetch reads every row, so A's write-back of the new token is raised
  // ahead of it, and only that one: B's stay behind.
  {
    shared.Drain();
    Gate gate(shared);
    const Ticket g = gate.ticket();
    append(*b, 2, 0);  // g + 1 (B)
    append(*a, 1, 0);  // g + 2 (A, needed)
    const Ticket probe = shared.Submit(TransferPriority::kWriteBack, 0, [] {});  // g + 3
    const uint64_t demands = shared.stats().count[0];
    const uint64_t raised = shared.stats().raised[2];
    Status st;
    std::thread step([&] { st = a->Attend(1, d.Q(0), got.data()); });
    WaitForDemands(shared, demands + 1);  // the fetch, g + 4
    gate.Open();
    step.join();
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_TRUE(shared.Wait(probe).ok());
    shared.Drain();
    const auto order = shared.start_order();
    const std::vector<Ticket> tail(order.end() - 5, order.end());
    EXPECT_EQ(tail, (std::vector<Ticket>{g, g + 2, g + 4, g + 1, g + 3}));
    EXPECT_EQ(shared.stats().raised[2], raised + 1);
    append(*twin, 1, 0);
    check(1, 0);
  }
  // The rest of the run, A's appends and fetches interleaved with B's on the shared worker.
  append(*a, 2, 0);
  append(*twin, 2, 0);
  ASSERT_TRUE(a->Attend(2, d.Q(0), got.data()).ok());
  check(2, 0);
  for (int s = 1; s < kSteps; ++s) {
    for (int l = 0; l < 3; ++l) {
      append(*a, l, s);
      append(*b, l, s);
      append(*twin, l, s);
      // Attention sees the token just appended: it is the last row of the last segment.
      auto sel = a->Select(l, d.Q(s));
      ASSERT_TRUE(sel.ok()) << sel.status().ToString();
      const auto& last = sel->segments.back();
      std::vector<kernels::Half> row(kRow);
      kernels::ConvertToHalf(d.K(kPrompt + s), row.data(), kRow);
      EXPECT_EQ(std::memcmp(last.keys + (last.tokens - 1) * last.token_stride, row.data(), kRow * sizeof(kernels::Half)), 0)
          << "layer " << l;
      ASSERT_TRUE(a->Attend(l, d.Q(s), got.data()).ok());
      check(l, s);
      ASSERT_TRUE(b->Attend(l, d.Q(s), got.data()).ok());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "B layer " << l;
    }
  }
  // Every appended row went through the scheduler as a write-back: K, V and (sparse) the
  // transposed key copy, fp16.
  a.reset();
  b.reset();
  const TransferStats st = shared.stats();
  std::printf("write-back: %llu jobs, %.3f ms busy, %.3f ms of the waited ones hidden; %llu raised ahead\n",
              static_cast<unsigned long long>(st.count[2]), 1e3 * st.busy_s[2], 1e3 * st.hidden_s[2],
              static_cast<unsigned long long>(st.raised[2]));
  const uint64_t tokens = kPrompt + kSteps, row_bytes = kRow * sizeof(kernels::Half);
  EXPECT_EQ(shared.stats().bytes[static_cast<int>(TransferPriority::kWriteBack)],
            2 * tokens * row_bytes * (3 + 2 + 3));
  EXPECT_EQ(shared.stats().count[static_cast<int>(TransferPriority::kWriteBack)],
            2 * (3 + kSteps * 3) + 2 /* gates */ + 2 /* probes */);
}

}  // namespace
}  // namespace kvt::sequence
