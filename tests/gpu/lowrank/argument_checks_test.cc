// Argument checks of the lowrank CUDA kernels: every one fails on the host before any CUDA call,
// so this binary runs (labelled unit) on machines without a device, while lowrank_gpu_test skips.
#include <gtest/gtest.h>

#include "gpu/kernels/lowrank/lorc_attention.cuh"
#include "gpu/kernels/lowrank/observed_attention_scores.cuh"
#include "host/kernels/half.h"

namespace kvt::gpu::lowrank {
namespace {

namespace klr = kernels::lowrank;

// Checked on the host before any CUDA call: runs without a device (the pointers are never read).
TEST(LorcAttentionCuda, RejectsBadArguments) {
  float f = 0.0f;
  kernels::Half hl{};
  char ws[1 << 16];
  klr::LorcAttentionArgs ok{.num_kv_heads = 2,
                            .num_q_heads = 8,
                            .head_dim = 16,
                            .key_rank = 4,
                            .value_rank = 4,
                            .capacity = 10,
                            .tokens = 5,
                            .key_up = &f,
                            .value_up = &f,
                            .key_latents = &hl,
                            .value_latents = &hl,
                            .rope = &f,
                            .query = &f,
                            .out = &f};
  ASSERT_LE(LorcAttentionWorkspaceBytesCuda(ok), sizeof(ws));
  auto code = [&](klr::LorcAttentionArgs a, size_t bytes = sizeof(ws)) {
    return LorcAttentionCuda(a, ws, bytes, nullptr).code();
  };
  auto with = [&](auto edit) {
    klr::LorcAttentionArgs a = ok;
    edit(a);
    return a;
  };
  EXPECT_EQ(code(with([](auto& a) { a.num_kv_heads = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.num_q_heads = 7; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.head_dim = 15; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.key_rank = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.value_rank = 17; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.tokens = 11; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.tokens = -1; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.rope = nullptr; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.out = nullptr; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ok, LorcAttentionWorkspaceBytesCuda(ok) - 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(LorcAttentionCuda(ok, nullptr, sizeof(ws), nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& a) { a.num_q_heads = 32; })), StatusCode::kUnsupported);  // group 16
  EXPECT_EQ(code(with([](auto& a) { a.head_dim = 258; })), StatusCode::kUnsupported);
}

// Checked on the host before any CUDA call: runs without a device (the pointers are never read).
TEST(ObservedAttentionScoresCuda, RejectsBadArguments) {
  float f = 0.0f;
  char ws[1 << 12];
  const klr::ObservedAttentionShape ok{2, 4, 16, 10, 3, 0.0f};
  ASSERT_LE(ObservedAttentionScoresWorkspaceBytesCuda(ok), sizeof(ws));
  auto code = [&](klr::ObservedAttentionShape s, size_t bytes = sizeof(ws)) {
    return ObservedAttentionScoresCuda(s, &f, &f, klr::ObservationReduce::kMax, &f, ws, bytes,
                                       nullptr)
        .code();
  };
  auto with = [&](auto edit) {
    klr::ObservedAttentionShape s = ok;
    edit(s);
    return s;
  };
  EXPECT_EQ(code(with([](auto& s) { s.num_kv_heads = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.num_q_heads = 5; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.head_dim = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.tokens = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.window = 0; })), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.window = 11; })),
            StatusCode::kInvalidArgument);  // longer than the cache
  EXPECT_EQ(code(ok, ObservedAttentionScoresWorkspaceBytesCuda(ok) - 1),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ObservedAttentionScoresCuda(ok, nullptr, &f, klr::ObservationReduce::kSum, &f, ws,
                                        sizeof(ws), nullptr)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ObservedAttentionScoresCuda(ok, &f, &f, klr::ObservationReduce::kSum, &f, nullptr,
                                        sizeof(ws), nullptr)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(with([](auto& s) { s.head_dim = 257; })), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kvt::gpu::lowrank
