// KIVI quantization: codes, packing and the round-trip error bound, against a scalar reference.
#include "host/kernels/kivi_quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

using testing::RandomHalves;

struct RefParams {
  float scale, zero, inv;
};

// The rule in kivi_layout.h, scalar.
RefParams RefQuantParams(float mn, float mx, int levels) {
  RefParams p;
  p.scale = RoundToHalf((mx - mn) / static_cast<float>(levels));
  p.zero = RoundToHalf(mn);
  p.inv = p.scale > 0 ? 1.0f / p.scale : 0.0f;
  return p;
}
int RefCode(float x, const RefParams& p, int levels) {
  const float c = std::nearbyint((x - p.zero) * p.inv);
  return static_cast<int>(std::min(std::max(c, 0.0f), static_cast<float>(levels)));
}
int ReadCode(const uint8_t* stream, int64_t i, int bits) {
  const int64_t bit = i * bits;
  return (stream[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
}
// The error bound of kivi_layout.h for a group with exact range [mn, mx].
double Bound(float mn, float mx, const RefParams& p, int levels) {
  const double exact = (static_cast<double>(mx) - mn) / levels;
  return p.scale / 2.0 + std::fabs(static_cast<double>(mn) - p.zero) +
         levels * std::fabs(exact - p.scale) + 1e-6 * std::fabs(mx);
}

struct Case {
  int bits, kv_heads, head_dim, group, value_group;
  int64_t groups, tokens;
};

class KiviQuantizeTest : public ::testing::TestWithParam<Case> {};

TEST_P(KiviQuantizeTest, KeysMatchReferenceAndBound) {
  const Case c = GetParam();
  std::mt19937 rng(c.bits * 7919 + c.head_dim);
  KiviLayout l{{c.kv_heads, c.kv_heads, c.head_dim}, c.bits, c.group, c.value_group};
  const int64_t row = c.kv_heads * c.head_dim, stride = row + 8;  // padded rows
  auto keys = RandomHalves(c.groups * c.group * stride, rng, 3.0f);
  std::vector<uint8_t> codes(c.groups * c.kv_heads * l.KeyGroupCodeBytes());
  std::vector<Half> scale(c.groups * c.kv_heads * c.head_dim), zero(scale.size());
  ASSERT_TRUE(KiviQuantizeKeys(l, keys.data(), stride, c.groups, codes.data(), scale.data(), zero.data()).ok());
  std::vector<float> deq(c.groups * c.group * row);
  ASSERT_TRUE(KiviDequantizeKeys(l, codes.data(), scale.data(), zero.data(), c.groups, deq.data()).ok());
  int mismatches = 0;
  for (int64_t g = 0; g < c.groups; ++g) {
    for (int h = 0; h < c.kv_heads; ++h) {
      const int64_t i = g * c.kv_heads + h;
      for (int ch = 0; ch < c.head_dim; ++ch) {
        float mn = INFINITY, mx = -INFINITY;
        for (int j = 0; j < c.group; ++j) {
          const float x = HalfToFloat(keys[(g * c.group + j) * stride + h * c.head_dim + ch]);
          mn = std::min(mn, x);
          mx = std::max(mx, x);
        }
        const RefParams p = RefQuantParams(mn, mx, l.levels());
        ASSERT_EQ(HalfToFloat(scale[i * c.head_dim + ch]), p.scale);
        ASSERT_EQ(HalfToFloat(zero[i * c.head_dim + ch]), p.zero);
        const uint8_t* stream = codes.data() + i * l.KeyGroupCodeBytes() + ch * (c.group * c.bits / 8);
        const double bound = Bound(mn, mx, p, l.levels());
        for (int j = 0; j < c.group; ++j) {
          const float x = HalfToFloat(keys[(g * c.group + j) * stride + h * c.head_dim + ch]);
          mismatches += ReadCode(stream, j, c.bits) != RefCode(x, p, l.levels());
          const float y = deq[(g * c.group + j) * row + h * c.head_dim + ch];
          ASSERT_LE(std::fabs(static_cast<double>(x) - y), bound) << "g" << g << " h" << h << " c" << ch;
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(KiviQuantizeTest, ValuesMatchReferenceAndBound) {
  const Case c = GetParam();
  std::mt19937 rng(c.bits * 104729 + c.head_dim);
  KiviLayout l{{c.kv_heads, c.kv_heads, c.head_dim}, c.bits, c.group, c.value_group};
  const int64_t row = c.kv_heads * c.head_dim;
  auto values = RandomHalves(c.tokens * row, rng, 2.0f);
  std::vector<uint8_t> codes(c.tokens * c.kv_heads * l.ValueTokenCodeBytes());
  std::vector<Half> scale(c.tokens * c.kv_heads * l.ValueGroups()), zero(scale.size());
  ASSERT_TRUE(KiviQuantizeValues(l, values.data(), row, c.tokens, codes.data(), scale.data(), zero.data()).ok());
  std::vector<float> deq(c.tokens * row);
  ASSERT_TRUE(KiviDequantizeValues(l, codes.data(), scale.data(), zero.data(), c.tokens, deq.data()).ok());
  int mismatches = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int h = 0; h < c.kv_heads; ++h) {
      const int64_t i = t * c.kv_heads + h;
      for (int vg = 0; vg < l.ValueGroups(); ++vg) {
        float mn = INFINITY, mx = -INFINITY;
        for (int ch = 0; ch < c.value_group; ++ch) {
          const float x = HalfToFloat(values[t * row + h * c.head_dim + vg * c.value_group + ch]);
          mn = std::min(mn, x);
          mx = std::max(mx, x);
        }
        const RefParams p = RefQuantParams(mn, mx, l.levels());
        ASSERT_EQ(HalfToFloat(scale[i * l.ValueGroups() + vg]), p.scale);
        ASSERT_EQ(HalfToFloat(zero[i * l.ValueGroups() + vg]), p.zero);
        const double bound = Bound(mn, mx, p, l.levels());
        for (int ch = 0; ch < c.value_group; ++ch) {
          const int cc = vg * c.value_group + ch;
          const float x = HalfToFloat(values[t * row + h * c.head_dim + cc]);
          mismatches += ReadCode(codes.data() + i * l.ValueTokenCodeBytes(), cc, c.bits) != RefCode(x, p, l.levels());
          ASSERT_LE(std::fabs(static_cast<double>(x) - deq[t * row + h * c.head_dim + cc]), bound);
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KiviQuantizeTest,
    ::testing::Values(Case{1, 2, 128, 64, 64, 3, 37}, Case{2, 8, 128, 64, 64, 2, 19},
                      Case{2, 2, 128, 32, 32, 3, 41}, Case{4, 3, 64, 32, 32, 2, 23},
                      Case{8, 2, 96, 24, 24, 3, 17}, Case{1, 1, 16, 8, 8, 5, 9},
                      Case{4, 1, 40, 40, 8, 2, 13}));

TEST(KiviQuantize, PackedLayoutRoundTripsKnownCodes) {
  // A group whose codes are known in advance: x_j = j mod (levels + 1) exactly representable.
  for (int bits : {1, 2, 4, 8}) {
    KiviLayout l{{1, 1, 8}, bits, 16, 8};
    const int levels = l.levels();
    std::vector<Half> keys(16 * 8);
    for (int j = 0; j < 16; ++j) {
      for (int c = 0; c < 8; ++c) keys[j * 8 + c] = FloatToHalf(static_cast<float>((j + c) % (levels + 1)));
    }
    // Make every channel span the full [0, levels] range so scale is exactly 1.
    for (int c = 0; c < 8; ++c) {
      keys[0 * 8 + c] = FloatToHalf(0.0f);
      keys[1 * 8 + c] = FloatToHalf(static_cast<float>(levels));
    }
    std::vector<uint8_t> codes(l.KeyGroupCodeBytes());
    std::vector<Half> scale(8), zero(8);
    ASSERT_TRUE(KiviQuantizeKeys(l, keys.data(), 8, 1, codes.data(), scale.data(), zero.data()).ok());
    for (int c = 0; c < 8; ++c) {
      for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(ReadCode(codes.data() + c * (16 * bits / 8), j, bits),
                  static_cast<int>(HalfToFloat(keys[j * 8 + c])))
            << "bits " << bits << " c " << c << " j " << j;
      }
    }
  }
}

TEST(KiviQuantize, RejectsBadLayouts) {
  std::vector<Half> x(64 * 8);
  std::vector<uint8_t> codes(1024);
  std::vector<Half> s(64), z(64);
  EXPECT_FALSE(KiviQuantizeKeys({{1, 1, 8}, 3, 8, 8}, x.data(), 8, 1, codes.data(), s.data(), z.data()).ok());
  EXPECT_FALSE(KiviQuantizeKeys({{1, 1, 8}, 2, 12, 8}, x.data(), 8, 1, codes.data(), s.data(), z.data()).ok());
  EXPECT_FALSE(KiviQuantizeValues({{1, 1, 8}, 2, 8, 16}, x.data(), 8, 1, codes.data(), s.data(), z.data()).ok());
  EXPECT_FALSE(KiviQuantizeKeys({{1, 1, 8}, 2, 8, 8}, nullptr, 8, 1, codes.data(), s.data(), z.data()).ok());
  EXPECT_FALSE(KiviQuantizeKeys({{1, 1, 8}, 2, 8, 8}, x.data(), 4, 1, codes.data(), s.data(), z.data()).ok());
}

}  // namespace
}  // namespace kvt::kernels
