#include "host/kernels/lowrank/tale_attention.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/lowrank/tale_fixture.h"

namespace kvt::kernels::lowrank {
namespace {

using lowrank_test::TaleFixture;

struct Case {
  int kv, q, d, max_tokens, window;
  std::array<int, 4> kbits, vbits;
};

// Kernel vs float64 attention over the decoded records: the only differences are float32
// accumulation and FastExp (rel. error < 2e-7 per weight). Tolerance 2e-5 of the output scale.
TEST(TaleAttention, MatchesFloat64ReferenceOnRaggedCaches) {
  std::mt19937 rng(20261122);
  const Case cases[] = {
      {1, 1, 8, 40, 0, {8, 8, 4, 4}, {8, 8, 4, 4}},
      {4, 8, 8, 70, 5, {8, 8, 4, 4}, {8, 8, 4, 4}},
      {3, 9, 20, 33, 7, {2, 4, 8, 16}, {32, 8, 4, 2}},
      {2, 8, 64, 90, 1, {8, 8, 4, 4}, {8, 4, 4, 2}},
      {2, 4, 128, 60, 13, {8, 8, 4, 4}, {8, 8, 4, 4}},
      {2, 2, 6, 25, 3, {32, 32, 32, 32}, {16, 16, 16, 16}},
  };
  for (const Case& c : cases) {
    TaleFixture f;
    f.Build(rng, c.kv, c.q, c.d, c.max_tokens, c.window,
            DefaultTaleFormat(c.d, {c.kbits[0], c.kbits[1], c.kbits[2], c.kbits[3]}),
            DefaultTaleFormat(c.d, {c.vbits[0], c.vbits[1], c.vbits[2], c.vbits[3]}));
    std::vector<float> out(static_cast<size_t>(c.q) * c.d, NAN), wa(static_cast<size_t>(c.kv) * c.window + 1, NAN);
    auto args = f.Args(out.data(), wa.data());
    std::vector<uint8_t> ws(TaleAttentionWorkspaceBytes(args));
    ASSERT_TRUE(TaleAttention(args, ws.data(), ws.size()).ok());
    std::vector<double> ref_wa;
    auto ref = f.Reference(&ref_wa);
    EXPECT_LT(lowrank_test::RelMaxError(out.data(), ref), 2e-5) << "d=" << c.d << " kv=" << c.kv;
    for (size_t i = 0; i < ref_wa.size(); ++i) EXPECT_NEAR(wa[i], ref_wa[i], 2e-6);
  }
}

TEST(TaleAttention, RejectsBadArguments) {
  std::mt19937 rng(3);
  TaleFixture f;
  f.Build(rng, 2, 4, 8, 10, 2, DefaultTaleFormat(8, {8, 8, 4, 4}), DefaultTaleFormat(8, {8, 8, 4, 4}));
  std::vector<float> out(32);
  auto args = f.Args(out.data(), nullptr);
  std::vector<uint8_t> ws(TaleAttentionWorkspaceBytes(args));
  EXPECT_EQ(TaleAttention(args, ws.data(), ws.size() - 1).code(), StatusCode::kInvalidArgument);
  auto bad = args;
  bad.num_q_heads = 5;
  EXPECT_EQ(TaleAttention(bad, ws.data(), ws.size()).code(), StatusCode::kInvalidArgument);
  bad = args;
  bad.max_head_tokens = 0;
  EXPECT_EQ(TaleAttention(bad, ws.data(), ws.size()).code(), StatusCode::kInvalidArgument);
  bad = args;
  bad.head_dim = 16;
  EXPECT_EQ(TaleAttention(bad, ws.data(), ws.size()).code(), StatusCode::kInvalidArgument);
  bad = args;
  bad.query = nullptr;
  EXPECT_EQ(TaleAttention(bad, ws.data(), ws.size()).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::kernels::lowrank
