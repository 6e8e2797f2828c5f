#include "host/kernels/lowrank/tale_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/unit/lowrank/reference.h"

namespace kvt::kernels::lowrank {
namespace {

TEST(TaleFormat, DefaultLayoutSizes) {
  auto layout = MakeTaleLayout(DefaultTaleFormat(128, {8, 8, 4, 4}));
  ASSERT_TRUE(layout.ok());
  // Segments [0,16) 8b, [16,32) 8b, [32,64) 4b, [64,128) 4b; one fp16 scale each.
  EXPECT_EQ(layout->levels[0].record_bytes, 4 * 2 + 16 + 16 + 16 + 32);
  EXPECT_EQ(layout->levels[1].record_bytes, 3 * 2 + 16 + 16 + 16);
  EXPECT_EQ(layout->levels[2].record_bytes, 2 * 2 + 16 + 16);
  EXPECT_EQ(layout->levels[3].record_bytes, 2 + 16);
  EXPECT_EQ(layout->levels[3].rank, 16);
  auto small = MakeTaleLayout(DefaultTaleFormat(8, {8, 8, 4, 4}));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->levels[3].rank, 1);
  EXPECT_EQ(small->levels[0].record_bytes, 4 * 2 + 1 + 1 + 1 + 2);
}

TEST(TaleFormat, RejectsBadFormats) {
  TaleFormat f = DefaultTaleFormat(8, {8, 8, 4, 3});
  EXPECT_FALSE(MakeTaleLayout(f).ok());
  f = DefaultTaleFormat(8, {8, 8, 4, 4});
  f.ranks[2] = 6;
  EXPECT_FALSE(MakeTaleLayout(f).ok());
  f = DefaultTaleFormat(0, {8, 8, 4, 4});
  EXPECT_FALSE(MakeTaleLayout(f).ok());
  f = DefaultTaleFormat(512, {8, 8, 4, 4});
  EXPECT_FALSE(MakeTaleLayout(f).ok());
}

// Round trip error per coefficient <= scale/2 (scale = absmax / ((2^b-1)/2), itself fp16-rounded),
// exact for 32 bits, fp16-exact for 16 bits; coefficients beyond the rank decode to 0.
TEST(TaleFormat, RoundTripWithinHalfStep) {
  std::mt19937 rng(5);
  for (int d : {8, 20, 64, 128}) {
    for (auto bits : {std::array<int, 4>{8, 8, 4, 4}, {2, 4, 8, 2}, {32, 16, 8, 4}}) {
      auto layout = MakeTaleLayout(DefaultTaleFormat(d, {bits[0], bits[1], bits[2], bits[3]}));
      ASSERT_TRUE(layout.ok());
      for (int l = 0; l < kTaleLevels; ++l) {
        const auto& lv = layout->levels[l];
        auto c = lowrank_test::RandomVector(rng, d, 3.0f);
        std::vector<uint8_t> rec(lv.record_bytes);
        std::vector<float> back(d);
        TaleEncodeRecord(lv, c.data(), rec.data());
        TaleDecodeRecord(lv, d, rec.data(), back.data());
        for (int s = 0; s < lv.num_segments; ++s) {
          const auto& seg = lv.segments[s];
          float absmax = 0.0f;
          for (int i = seg.begin; i < seg.end; ++i) absmax = std::max(absmax, std::fabs(c[i]));
          const float step = seg.bits >= 16 ? 0.0f : absmax / TaleCodeOffset(seg.bits);
          for (int i = seg.begin; i < seg.end; ++i) {
            const float tol = seg.bits == 32 ? 0.0f
                              : seg.bits == 16 ? std::fabs(c[i]) * 1e-3f
                                               : 0.5f * step * 1.002f + 1e-6f;
            EXPECT_LE(std::fabs(back[i] - c[i]), tol) << "d=" << d << " level=" << l << " i=" << i;
          }
        }
        for (int i = lv.rank; i < d; ++i) EXPECT_EQ(back[i], 0.0f);
      }
    }
  }
}

}  // namespace
}  // namespace kvt::kernels::lowrank
