// CUDA LoRC latent attention against its CPU twin, on fresh random latents, bases, RoPE tables and
// queries. Skips without a device (argument checks: argument_checks_test.cc).
#include "gpu/kernels/lowrank/lorc_attention.cuh"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "host/kernels/half.h"
#include "host/kernels/lowrank/lorc_attention.h"
#include "tests/gpu/lowrank/device_buffers.h"
#include "tests/unit/lowrank/reference.h"

namespace kvt::gpu::lowrank {
namespace {

namespace klr = kernels::lowrank;
using test::DeviceBuffers;
using test::HaveDevice;

struct Inputs {
  std::vector<float> key_up, value_up, rope, query;
  std::vector<kernels::Half> key_latents, value_latents;
};

Inputs Random(std::mt19937& rng, const klr::LorcAttentionArgs& a) {
  Inputs in;
  const size_t kv = a.num_kv_heads, d = a.head_dim, cap = a.capacity;
  in.key_up = lowrank_test::RandomVector(rng, kv * d * a.key_rank, 0.5f);
  in.value_up = lowrank_test::RandomVector(rng, kv * d * a.value_rank, 0.5f);
  in.query = lowrank_test::RandomVector(rng, static_cast<size_t>(a.num_q_heads) * d, 1.0f);
  for (float x : lowrank_test::RandomVector(rng, kv * cap * a.key_rank, 2.0f))
    in.key_latents.push_back(kernels::FloatToHalf(x));
  for (float x : lowrank_test::RandomVector(rng, kv * cap * a.value_rank, 1.0f))
    in.value_latents.push_back(kernels::FloatToHalf(x));
  in.rope.resize(cap * d);
  std::uniform_int_distribution<int32_t> pos(0, 100000);  // positions need not be 0..tokens-1
  for (size_t t = 0; t < cap; ++t)
    klr::LorcRopeTable(pos(rng), a.head_dim, 10000.0f, in.rope.data() + t * d);
  return in;
}

// Tolerance 1e-4 of max |out|: the GPU sums the key rebuild, the dots and the chunk merge in a
// different order than the CPU and uses expf instead of the CPU's polynomial FastExp; both are
// ~1e-6 relative per term, accumulated over head_dim * rank terms and thousands of tokens.
TEST(LorcAttentionCuda, MatchesCpuTwin) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(91);
  struct Case {
    int kv, q, d, rk, rv;
    int64_t capacity, tokens;
    float scale;
  };
  // Groups 1, 2, 4, 8 (and 3); head_dim 8..256; ranks below head_dim (and one equal); ragged
  // token counts (1, below one chunk of 128, just over, many chunks) inside a larger capacity.
  for (const Case c :
       {Case{1, 1, 8, 3, 5, 10, 1, 0.0f}, Case{2, 4, 16, 7, 9, 200, 129, 0.0f},
        Case{4, 16, 64, 16, 24, 700, 555, 0.0f}, Case{2, 16, 128, 32, 48, 3000, 2777, 0.0f},
        Case{3, 9, 40, 40, 13, 300, 127, 0.2f}, Case{1, 8, 128, 100, 127, 260, 257, 0.0f},
        Case{2, 4, 256, 64, 96, 400, 300, 0.0f}}) {
    klr::LorcAttentionArgs a;
    a.num_kv_heads = c.kv;
    a.num_q_heads = c.q;
    a.head_dim = c.d;
    a.key_rank = c.rk;
    a.value_rank = c.rv;
    a.capacity = c.capacity;
    a.tokens = c.tokens;
    a.scale = c.scale;
    const Inputs in = Random(rng, a);
    std::vector<float> cpu(static_cast<size_t>(c.q) * c.d);
    klr::LorcAttentionArgs h = a;
    h.key_up = in.key_up.data();
    h.value_up = in.value_up.data();
    h.key_latents = in.key_latents.data();
    h.value_latents = in.value_latents.data();
    h.rope = in.rope.data();
    h.query = in.query.data();
    h.out = cpu.data();
    std::vector<uint8_t> ws(klr::LorcAttentionWorkspaceBytes(h));
    ASSERT_TRUE(klr::LorcAttention(h, ws.data(), ws.size()).ok());

    DeviceBuffers dev;
    klr::LorcAttentionArgs g = a;
    g.key_up = dev.Upload(in.key_up);
    g.value_up = dev.Upload(in.value_up);
    g.key_latents = dev.Upload(in.key_latents);
    g.value_latents = dev.Upload(in.value_latents);
    g.rope = dev.Upload(in.rope);
    g.query = dev.Upload(in.query);
    g.out = static_cast<float*>(dev.Alloc(cpu.size() * sizeof(float)));
    const size_t bytes = LorcAttentionWorkspaceBytesCuda(g);
    ASSERT_TRUE(LorcAttentionCuda(g, dev.Alloc(bytes), bytes, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = dev.Download(g.out, cpu.size());
    double mag = 0.0;
    for (float x : cpu) mag = std::max(mag, static_cast<double>(std::fabs(x)));
    ASSERT_GT(mag, 0.0);
    for (size_t i = 0; i < cpu.size(); ++i) {
      EXPECT_NEAR(got[i], cpu[i], 1e-4 * mag)
          << "kv=" << c.kv << " q=" << c.q << " d=" << c.d << " i=" << i;
    }
  }
}

// No tokens: the CPU twin writes zeros, so must the GPU (over a poisoned output).
TEST(LorcAttentionCuda, NoTokensWritesZeros) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  DeviceBuffers dev;
  klr::LorcAttentionArgs a{.num_kv_heads = 2,
                           .num_q_heads = 4,
                           .head_dim = 8,
                           .key_rank = 4,
                           .value_rank = 4,
                           .capacity = 4};
  a.key_up = dev.Upload(std::vector<float>(2 * 8 * 4, 1.0f));
  a.value_up = a.key_up;
  a.query = dev.Upload(std::vector<float>(4 * 8, 1.0f));
  a.out = dev.Upload(std::vector<float>(4 * 8, 7.0f));
  ASSERT_TRUE(LorcAttentionCuda(a, nullptr, 0, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (float x : dev.Download(a.out, 4 * 8)) EXPECT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace kvt::gpu::lowrank
