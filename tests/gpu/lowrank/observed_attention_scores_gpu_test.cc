// CUDA observed attention scores against the CPU twin, on fresh random keys and window queries,
// both reductions. Skips without a device (argument checks: argument_checks_test.cc).
#include "gpu/kernels/lowrank/observed_attention_scores.cuh"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "host/kernels/lowrank/observed_attention_scores.h"
#include "tests/gpu/lowrank/device_buffers.h"
#include "tests/unit/lowrank/reference.h"

namespace kvt::gpu::lowrank {
namespace {

namespace klr = kernels::lowrank;
using test::DeviceBuffers;
using test::HaveDevice;

// Tolerance 1e-5 of max |score| plus 1e-4 relative: scores are sums/maxima of probabilities in
// [0, 1]; the GPU's dot products and softmax sums run in a different order and use expf where
// the CPU uses its polynomial FastExp (both ~1e-7 relative), so errors stay near float epsilon
// times the window length.
TEST(ObservedAttentionScoresCuda, MatchesCpuTwin) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(92);
  struct Case {
    int kv, q, d;
    int64_t tokens;
    int window;
    float scale;
  };
  // Groups 1, 2, 4, 8 (and 3); head_dim 8..256; windows of 1, a few, the whole cache; ragged
  // token counts (not multiples of a block's 8 warps).
  for (const Case c :
       {Case{1, 1, 8, 1, 1, 0.0f}, Case{1, 2, 16, 37, 5, 0.0f}, Case{2, 8, 64, 301, 32, 0.0f},
        Case{4, 32, 128, 1003, 17, 0.0f}, Case{3, 9, 40, 50, 50, 0.3f},
        Case{2, 16, 128, 777, 1, 0.0f}, Case{1, 4, 256, 129, 64, 0.0f}}) {
    for (const klr::ObservationReduce reduce :
         {klr::ObservationReduce::kMax, klr::ObservationReduce::kSum}) {
      const klr::ObservedAttentionShape s{c.kv, c.q, c.d, c.tokens, c.window, c.scale};
      const auto keys =
          lowrank_test::RandomVector(rng, static_cast<size_t>(c.tokens) * c.kv * c.d, 2.0f);
      const auto queries =
          lowrank_test::RandomVector(rng, static_cast<size_t>(c.window) * c.q * c.d, 2.0f);
      std::vector<float> cpu(static_cast<size_t>(c.kv) * c.tokens);
      std::vector<uint8_t> ws(klr::ObservedAttentionScoresWorkspaceBytes(s));
      ASSERT_TRUE(klr::ObservedAttentionScores(s, keys.data(), queries.data(), reduce, cpu.data(),
                                               ws.data(), ws.size())
                      .ok());

      DeviceBuffers dev;
      float* out =
          dev.Upload(std::vector<float>(cpu.size(), -1.0f));  // poisoned: every score is written
      const size_t bytes = ObservedAttentionScoresWorkspaceBytesCuda(s);
      ASSERT_TRUE(ObservedAttentionScoresCuda(s, dev.Upload(keys), dev.Upload(queries), reduce, out,
                                              dev.Alloc(bytes), bytes, nullptr)
                      .ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> got = dev.Download(out, cpu.size());
      double mag = 0.0;
      for (float x : cpu) mag = std::max(mag, static_cast<double>(std::fabs(x)));
      ASSERT_GT(mag, 0.0);
      for (size_t i = 0; i < cpu.size(); ++i) {
        EXPECT_NEAR(got[i], cpu[i], 1e-5 * mag + 1e-4 * std::fabs(cpu[i]))
            << "kv=" << c.kv << " q=" << c.q << " d=" << c.d << " tokens=" << c.tokens
            << " window=" << c.window << " max=" << (reduce == klr::ObservationReduce::kMax)
            << " i=" << i;
      }
    }
  }
}

}  // namespace
}  // namespace kvt::gpu::lowrank
