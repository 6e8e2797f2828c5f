// Sequence plans in their text form (sequence/sequence_plan.h): what kvt_sequence_open and
// kvt_sequence_open_in_client take from an engine, and what kvt-plan files hold.
// Properties: ParsePlan refuses or returns a plan that validates; formatting a parsed plan and
// parsing it again gives the same plan (the text form round-trips).
#include <string>
#include <string_view>

#include "sequence/sequence_plan.h"
#include "tests/fuzz/fuzz_target.h"

namespace kvt::fuzz {

std::vector<std::vector<uint8_t>> Seeds() {
  return {
      Bytes("kvt-sequence-plan 1\n"
            "model stories260K\n"
            "shape layers=5,q_heads=8,kv_heads=4,head_dim=8\n"
            "layer 0 kivi bits=2,group=32,residual=128,score=0.41   # the planner's dense preference\n"
            "layer 1 sparse budget=96,sinks=4,recent=32,channels=2,scorer=channels\n"
            "layer 2 tale window=64,sinks=4\n"
            "layer 3 kvcompose ratio=0.5\n"
            "layer 4 full\n"),
      Bytes("kvt-sequence-plan 1\n"
            "shape layers=4,q_heads=32,kv_heads=8,head_dim=128\n"
            "layer 0 kivi bits=1,group=64,residual=128\n"
            "layer 1 sparse budget=192,sinks=8,recent=56,channels=8,scorer=sketch,sketch_bits=2,sketch_group=64\n"
            "layer 2 offload\n"
            "layer 3 kvcompose ratio=0.25,structured=0,global=1\n"),
      Bytes("kvt-sequence-plan 1\nmodel m\nshape layers=2,q_heads=2,kv_heads=1,head_dim=64\n"
            "layer 0 tale window=16,sinks=2,basis=pairs,f0=0.5,f1=0.3,f2=0.2,kbits=4,vbits=4\n"
            "layer 1 kvcompose ratio=0.5,global=1\n"),
  };
}

}  // namespace kvt::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto plan = kvt::sequence::ParsePlan(text);
  if (!plan.ok()) {
    KVT_FUZZ_CHECK(!plan.status().message().empty(), "a refused plan says why");
    return 0;
  }
  KVT_FUZZ_CHECK(plan->Validate().ok(), plan->Validate().ToString());
  const std::string formatted = kvt::sequence::FormatPlan(*plan);
  auto again = kvt::sequence::ParsePlan(formatted);
  KVT_FUZZ_CHECK(again.ok(), "a formatted plan parses: " + again.status().ToString() + "\n" + formatted);
  KVT_FUZZ_CHECK(kvt::sequence::FormatPlan(*again) == formatted, "the text form round-trips:\n" + formatted);
  kvt::fuzz::CountAccepted();
  return 0;
}
