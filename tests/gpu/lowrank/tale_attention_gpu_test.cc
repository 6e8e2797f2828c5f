// CUDA TALE attention and the dense fp16 baseline against their CPU twins, on fresh random caches.
// Skips without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "gpu/kernels/decode_attention.cuh"
#include "gpu/kernels/lowrank/tale_attention.cuh"
#include "host/kernels/lowrank/dense_attention.h"
#include "host/kernels/lowrank/tale_attention.h"
#include "tests/gpu/lowrank/device_buffers.h"
#include "tests/unit/lowrank/tale_fixture.h"

namespace kvt::gpu::lowrank {
namespace {

namespace klr = kernels::lowrank;

using test::DeviceBuffers;
using test::HaveDevice;

// Tolerance 1e-4 of the output scale: __expf and a different summation order than the CPU.
TEST(TaleAttentionCuda, MatchesCpuTwin) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(77);
  // Formats: the default one, and every bit width (fp32 and fp16 segments, 2-bit codes whose last
  // byte is partly outside the segment). Token counts span several blocks per bucket (a block
  // takes up to 256 tokens) and windows of one and two blocks; groups 1, 2, 3, 4, 5 and 8.
  struct Case { int kv, q, d, max_tokens, window, kbits[4], vbits[4]; };
  for (const Case c : {Case{1, 1, 8, 40, 0, {8, 8, 4, 4}, {8, 4, 4, 2}}, Case{4, 8, 8, 700, 5, {8, 8, 4, 4}, {8, 4, 4, 2}},
                       Case{3, 9, 20, 300, 70, {8, 8, 4, 4}, {8, 4, 4, 2}}, Case{8, 32, 128, 600, 64, {8, 8, 4, 4}, {8, 4, 4, 2}},
                       Case{2, 16, 128, 3000, 300, {8, 8, 4, 4}, {8, 4, 4, 2}}, Case{3, 15, 44, 1100, 17, {32, 16, 8, 2}, {16, 2, 8, 4}},
                       Case{2, 8, 256, 900, 260, {16, 8, 4, 2}, {32, 8, 2, 4}}}) {
    lowrank_test::TaleFixture f;
    f.Build(rng, c.kv, c.q, c.d, c.max_tokens, c.window, klr::DefaultTaleFormat(c.d, c.kbits),
            klr::DefaultTaleFormat(c.d, c.vbits));
    std::vector<float> cpu(static_cast<size_t>(c.q) * c.d), cpu_wa(static_cast<size_t>(c.kv) * c.window + 1);
    auto args = f.Args(cpu.data(), cpu_wa.data());
    std::vector<uint8_t> ws(klr::TaleAttentionWorkspaceBytes(args));
    ASSERT_TRUE(klr::TaleAttention(args, ws.data(), ws.size()).ok());

    DeviceBuffers dev;
    klr::TaleAttentionArgs g = args;
    g.key_basis = dev.Upload(f.key_basis);
    g.value_basis = dev.Upload(f.value_basis);
    for (int l = 0; l < 4; ++l) {
      g.levels[l].key_records = dev.Upload(f.krec[l]);
      g.levels[l].value_records = dev.Upload(f.vrec[l]);
      g.levels[l].tokens = dev.Upload(f.counts[l]);
    }
    g.window_keys = dev.Upload(f.window_k);
    g.window_values = dev.Upload(f.window_v);
    g.query = dev.Upload(f.query);
    g.out = static_cast<float*>(dev.Alloc(cpu.size() * sizeof(float)));
    g.window_attention = static_cast<float*>(dev.Alloc(cpu_wa.size() * sizeof(float)));
    const size_t bytes = TaleAttentionWorkspaceBytesCuda(g);
    void* dws = dev.Alloc(bytes);
    ASSERT_TRUE(TaleAttentionCuda(g, dws, bytes, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> got(cpu.size()), got_wa(cpu_wa.size());
    ASSERT_EQ(cudaMemcpy(got.data(), g.out, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(got_wa.data(), g.window_attention, got_wa.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    double mag = 1.0;
    for (float x : cpu) mag = std::max(mag, static_cast<double>(std::fabs(x)));
    for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(got[i], cpu[i], 1e-4 * mag) << "d=" << c.d << " i=" << i;
    for (size_t i = 0; i + 1 < cpu_wa.size(); ++i) EXPECT_NEAR(got_wa[i], cpu_wa[i], 1e-5);
  }
}

// The lowrank bench's GPU dense baseline is the product's decode kernel over TALE's head-major
// fp16 cache: it computes the CPU dense twin's function.
TEST(DenseBaselineCuda, DecodeKernelMatchesTheCpuDenseTwin) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(78);
  klr::DenseAttentionShape s{8, 32, 128, 3000, 0.0f};
  const int64_t tokens = 2777;
  std::vector<uint16_t> k(static_cast<size_t>(s.num_kv_heads) * s.capacity * s.head_dim), v(k.size());
  auto kf = lowrank_test::RandomVector(rng, k.size(), 2.0f), vf = lowrank_test::RandomVector(rng, k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    _Float16 a = static_cast<_Float16>(kf[i]), b = static_cast<_Float16>(vf[i]);
    std::memcpy(&k[i], &a, 2);
    std::memcpy(&v[i], &b, 2);
  }
  auto q = lowrank_test::RandomVector(rng, static_cast<size_t>(s.num_q_heads) * s.head_dim);
  std::vector<float> cpu(q.size());
  std::vector<uint8_t> ws(klr::DenseAttentionWorkspaceBytes(s));
  ASSERT_TRUE(klr::DenseAttentionF16(s, k.data(), v.data(), tokens, q.data(), cpu.data(), ws.data(), ws.size()).ok());
  DeviceBuffers dev;
  float* out = static_cast<float*>(dev.Alloc(cpu.size() * 4));
  const kernels::AttentionShape shape{s.num_q_heads, s.num_kv_heads, s.head_dim};
  const kernels::KvSegment<kernels::Half> seg{reinterpret_cast<const kernels::Half*>(dev.Upload(k)),
                                              reinterpret_cast<const kernels::Half*>(dev.Upload(v)), tokens,
                                              s.head_dim, static_cast<int64_t>(s.capacity) * s.head_dim};
  const size_t bytes = DecodeAttentionWorkspaceBytesCuda(shape, tokens);
  ASSERT_TRUE(DecodeAttentionCuda(shape, std::span(&seg, 1), dev.Upload(q), out, dev.Alloc(bytes), bytes, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> got(cpu.size());
  ASSERT_EQ(cudaMemcpy(got.data(), out, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(got[i], cpu[i], 1e-4);
}

}  // namespace
}  // namespace kvt::gpu::lowrank
