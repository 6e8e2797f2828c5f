// SketchScoresCuda against its CPU twin (host/kernels/sketch_scores.h) on fresh random inputs;
// tolerance 1e-4 relative (fp32 accumulation order differs). Skipped without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gpu/kernels/sketch_scores.cuh"
#include "host/kernels/convert.h"
#include "host/kernels/kivi_quantize.h"
#include "host/kernels/sketch_scores.h"
#include "tests/gpu/device_buffer.h"

namespace kvt::gpu {
namespace {

using testing::DeviceBuffer;

TEST(SketchScoresCuda, MatchesCpu) {
  KVT_REQUIRE_GPU();
  const kernels::AttentionShape s{32, 8, 128};
  for (int bits : {1, 2, 4}) {
    const kernels::KiviLayout l{s, bits, 64, 128};
    const int groups = 33, t = groups * 64, row = s.kv_heads * s.head_dim, ch = 8;
    std::mt19937 rng(100 + bits);
    std::normal_distribution<float> nd;
    std::uniform_int_distribution<int> pick(0, s.head_dim - 1);
    std::vector<float> kf(static_cast<size_t>(t) * row), qhat(row);
    for (auto& x : kf) x = nd(rng);
    for (auto& x : qhat) x = nd(rng);
    std::vector<kernels::Half> k(kf.size());
    kernels::ConvertToHalf(kf.data(), k.data(), static_cast<int64_t>(kf.size()));
    std::vector<uint8_t> codes(groups * s.kv_heads * l.KeyGroupCodeBytes());
    std::vector<kernels::Half> scale(groups * s.kv_heads * l.KeyGroupParams()), zero(scale.size());
    ASSERT_TRUE(kernels::KiviQuantizeKeys(l, k.data(), row, groups, codes.data(), scale.data(), zero.data()).ok());
    std::vector<int32_t> sel(s.kv_heads * ch);
    for (auto& c : sel) c = pick(rng);
    const int64_t begin = 8, n = t - 100;
    std::vector<float> want(s.kv_heads * n);
    ASSERT_TRUE(kernels::SketchScores(l, codes.data(), scale.data(), zero.data(), groups, qhat.data(), sel.data(), ch,
                                      begin, n, want.data(), n).ok());
    DeviceBuffer<uint8_t> d_codes(codes);
    DeviceBuffer<kernels::Half> d_scale(scale), d_zero(zero);
    DeviceBuffer<float> d_q(qhat), d_scores(want.size());
    DeviceBuffer<int32_t> d_sel(sel);
    ASSERT_TRUE(SketchScoresCuda(l, d_codes.get(), d_scale.get(), d_zero.get(), groups, d_q.get(), d_sel.get(), ch,
                                 begin, n, d_scores.get(), n, nullptr).ok());
    const auto got = d_scores.Download(want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << "bits " << bits << " at " << i;
    }
  }
}

}  // namespace
}  // namespace kvt::gpu
