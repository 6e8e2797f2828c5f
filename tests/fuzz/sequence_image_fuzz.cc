// Suspend images of a sequence (Sequence::Suspend / Restore): what kvt_sequence_resume takes from
// an engine and what a suspend file holds once its checksum passes.
// Properties: Restore refuses a bad image with an error; an image it accepts is a working sequence
// (every layer holding tokens attends), and suspending it again gives an image that restores
// to the same bytes.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sequence/sequence.h"
#include "sequence/transfer_scheduler.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using kvt::sequence::Sequence;
using kvt::sequence::SequenceOptions;

kvt::sequence::TransferScheduler& Scheduler() {
  static auto* scheduler = new kvt::sequence::TransferScheduler();  // shared by every input, never torn down
  return *scheduler;
}

SequenceOptions Options() {
  SequenceOptions o;
  o.scheduler = &Scheduler();
  return o;
}

// Deterministic values in [-1, 1), never all zero.
std::vector<float> Values(size_t n, uint32_t salt) {
  std::vector<float> v(n);
  uint32_t x = 0x9e3779b9u ^ salt;
  for (auto& f : v) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    f = static_cast<float>(x % 2000) / 1000.0f - 1.0f;
  }
  return v;
}

}  // namespace

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  // Small shapes with every layer kind, long enough that KIVI quantizes groups and sparse layers
  // select (tokens > budget).
  const char* kPlans[] = {
      "kvt-sequence-plan 1\nshape layers=4,q_heads=2,kv_heads=1,head_dim=16\n"
      "layer 0 full\nlayer 1 offload\nlayer 2 kivi bits=2,group=8,residual=16\n"
      "layer 3 sparse budget=12,sinks=2,recent=4,channels=2,scorer=channels\n",
      "kvt-sequence-plan 1\nshape layers=3,q_heads=4,kv_heads=2,head_dim=16\n"
      "layer 0 kivi bits=1,group=8,residual=8\n"
      "layer 1 sparse budget=12,sinks=2,recent=4,channels=4,scorer=sketch,sketch_bits=2,sketch_group=8\n"
      "layer 2 kivi bits=4,group=16,residual=16\n",
      "kvt-sequence-plan 1\nshape layers=2,q_heads=2,kv_heads=1,head_dim=64\n"
      "layer 0 tale window=8,sinks=2\nlayer 1 kvcompose ratio=0.5\n",
  };
  std::vector<std::vector<uint8_t>> seeds;
  for (const char* text : kPlans) {
    auto plan = sequence::ParsePlan(text);
    KVT_FUZZ_CHECK(plan.ok(), plan.status().ToString());
    auto seq = Sequence::Open(*plan, Options());
    KVT_FUZZ_CHECK(seq.ok(), seq.status().ToString());
    const int row = plan->kv_heads * plan->head_dim, q = plan->q_heads * plan->head_dim;
    const int tokens = 40;
    for (int l = 0; l < plan->num_layers(); ++l) {
      const auto k = Values(size_t(tokens) * row, 2 * l), v = Values(size_t(tokens) * row, 2 * l + 1);
      KVT_FUZZ_CHECK((*seq)->Append(l, k.data(), v.data(), tokens).ok(), "seed append");
      const auto window = Values(size_t(4) * q, 100 + l);
      KVT_FUZZ_CHECK((*seq)->Observe(l, window.data(), 4).ok(), "seed observe");
      const auto k1 = Values(row, 200 + l), v1 = Values(row, 300 + l);
      KVT_FUZZ_CHECK((*seq)->Append(l, k1.data(), v1.data(), 1).ok(), "seed decode append");
    }
    auto image = (*seq)->Suspend();
    KVT_FUZZ_CHECK(image.ok(), image.status().ToString());
    seeds.push_back(std::move(*image));
  }
  return seeds;
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto seq = Sequence::Restore(std::span<const uint8_t>(data, size), Options());
  if (!seq.ok()) {
    KVT_FUZZ_CHECK(!seq.status().message().empty(), "a refused image says why");
    return 0;
  }
  const auto& plan = (*seq)->plan();
  const auto query = Values(size_t(plan.q_heads) * plan.head_dim, 7);
  std::vector<float> out(query.size());
  for (int l = 0; l < plan.num_layers(); ++l) {
    const kvt::Status s = (*seq)->Attend(l, query.data(), out.data());
    // An image may hold an empty layer, which has nothing to attend to; any other layer attends.
    KVT_FUZZ_CHECK(s.ok() || (*seq)->tokens(l) == 0,
                   "a restored sequence attends (layer " + std::to_string(l) + "): " + s.ToString());
  }
  auto image = (*seq)->Suspend();
  KVT_FUZZ_CHECK(image.ok(), image.status().ToString());
  auto again = Sequence::Restore(*image, Options());
  KVT_FUZZ_CHECK(again.ok(), "a re-suspended image restores: " + again.status().ToString());
  auto image2 = (*again)->Suspend();
  KVT_FUZZ_CHECK(image2.ok() && *image2 == *image, "suspend / restore round-trips the image");
  kvt::fuzz::CountAccepted();
  return 0;
}
