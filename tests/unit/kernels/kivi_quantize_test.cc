// KIVI quantization: codes, packing and the round-trip error bound, against a scalar reference,
// on every instruction-set path this CPU can run (portable, AVX2, AVX-512), which must also agree
// bit for bit.
#include "host/kernels/kivi_quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "host/kernels/cpu_requirements.h"
#include "host/kernels/internal/kivi_quantize_isa.h"

#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

using internal::CpuIsa;
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

// The entry points' CPU check answers what CPUID says, and names the missing extensions.
TEST(HostKernelCpu, RequirementMatchesCpuid) {
  __builtin_cpu_init();
  const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const Status s = RequireHostKernelCpu();
  EXPECT_EQ(s.ok(), has);
  if (!has) {
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("AVX2"), std::string::npos);
  }
}

class KiviQuantizeTest : public ::testing::TestWithParam<std::tuple<CpuIsa, Case>> {
 protected:
  void SetUp() override {
    if (!internal::CpuSupports(isa())) GTEST_SKIP() << "CPU lacks " << internal::CpuIsaName(isa());
  }
  CpuIsa isa() const { return std::get<0>(GetParam()); }
};

TEST_P(KiviQuantizeTest, KeysMatchReferenceAndBound) {
  const Case c = std::get<1>(GetParam());
  const CpuIsa isa = this->isa();
  std::mt19937 rng(c.bits * 7919 + c.head_dim);
  KiviLayout l{{c.kv_heads, c.kv_heads, c.head_dim}, c.bits, c.group, c.value_group};
  const int64_t row = c.kv_heads * c.head_dim, stride = row + 8;  // padded rows
  auto keys = RandomHalves(c.groups * c.group * stride, rng, 3.0f);
  std::vector<uint8_t> codes(c.groups * c.kv_heads * l.KeyGroupCodeBytes());
  std::vector<Half> scale(c.groups * c.kv_heads * c.head_dim), zero(scale.size());
  ASSERT_TRUE(internal::KiviQuantizeKeysOn(isa, l, keys.data(), stride, c.groups, codes.data(), scale.data(),
                                           zero.data()).ok());
  std::vector<float> deq(c.groups * c.group * row);
  ASSERT_TRUE(internal::KiviDequantizeKeysOn(isa, l, codes.data(), scale.data(), zero.data(), c.groups,
                                             deq.data()).ok());
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
  const Case c = std::get<1>(GetParam());
  const CpuIsa isa = this->isa();
  std::mt19937 rng(c.bits * 104729 + c.head_dim);
  KiviLayout l{{c.kv_heads, c.kv_heads, c.head_dim}, c.bits, c.group, c.value_group};
  const int64_t row = c.kv_heads * c.head_dim;
  auto values = RandomHalves(c.tokens * row, rng, 2.0f);
  std::vector<uint8_t> codes(c.tokens * c.kv_heads * l.ValueTokenCodeBytes());
  std::vector<Half> scale(c.tokens * c.kv_heads * l.ValueGroups()), zero(scale.size());
  ASSERT_TRUE(internal::KiviQuantizeValuesOn(isa, l, values.data(), row, c.tokens, codes.data(), scale.data(),
                                             zero.data()).ok());
  std::vector<float> deq(c.tokens * row);
  ASSERT_TRUE(internal::KiviDequantizeValuesOn(isa, l, codes.data(), scale.data(), zero.data(), c.tokens,
                                               deq.data()).ok());
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

const Case kCases[] = {Case{1, 2, 128, 64, 64, 3, 37}, Case{2, 8, 128, 64, 64, 2, 19},
                       Case{2, 2, 128, 32, 32, 3, 41}, Case{4, 3, 64, 32, 32, 2, 23},
                       Case{8, 2, 96, 24, 24, 3, 17},  Case{1, 1, 16, 8, 8, 5, 9},
                       Case{4, 1, 40, 40, 8, 2, 13},   Case{2, 3, 24, 16, 8, 4, 11},
                       // Large enough for several oneTBB chunks and streamed (non-temporal) output.
                       Case{2, 8, 128, 32, 32, 72, 2100}};
const CpuIsa kIsas[] = {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512};

std::string CaseName(const ::testing::TestParamInfo<std::tuple<CpuIsa, Case>>& info) {
  const Case& c = std::get<1>(info.param);
  return std::string(internal::CpuIsaName(std::get<0>(info.param))) + "_b" + std::to_string(c.bits) + "_h" +
         std::to_string(c.kv_heads) + "_d" + std::to_string(c.head_dim) + "_g" + std::to_string(c.group) + "_vg" +
         std::to_string(c.value_group) + "_n" + std::to_string(c.groups) + "x" + std::to_string(c.tokens);
}

INSTANTIATE_TEST_SUITE_P(Shapes, KiviQuantizeTest,
                         ::testing::Combine(::testing::ValuesIn(kIsas), ::testing::ValuesIn(kCases)), CaseName);

// Every path the CPU runs produces the same bytes as the portable one (codes, scales, zeros and
// the dequantized floats), for keys and values, on a shape with a head_dim % 16 == 8 tail.
TEST(KiviQuantize, PathsAgreeBitForBit) {
  for (const int bits : {1, 2, 4, 8}) {
    const KiviLayout l{{4, 2, 136}, bits, 40, 8};
    std::mt19937 rng(bits);
    const int64_t groups = 3, tokens = groups * l.key_group, row = 2 * 136;
    const auto x = RandomHalves(tokens * row, rng, 4.0f);
    struct Out {
      std::vector<uint8_t> kc, vc;
      std::vector<Half> ks, kz, vs, vz;
      std::vector<float> kd, vd;
    };
    auto run = [&](CpuIsa isa) {
      Out o;
      o.kc.resize(groups * 2 * l.KeyGroupCodeBytes());
      o.ks.resize(groups * row);
      o.kz.resize(o.ks.size());
      o.vc.resize(tokens * 2 * l.ValueTokenCodeBytes());
      o.vs.resize(tokens * 2 * l.ValueGroups());
      o.vz.resize(o.vs.size());
      o.kd.resize(tokens * row);
      o.vd.resize(tokens * row);
      EXPECT_TRUE(internal::KiviQuantizeKeysOn(isa, l, x.data(), row, groups, o.kc.data(), o.ks.data(), o.kz.data()).ok());
      EXPECT_TRUE(internal::KiviQuantizeValuesOn(isa, l, x.data(), row, tokens, o.vc.data(), o.vs.data(), o.vz.data()).ok());
      EXPECT_TRUE(internal::KiviDequantizeKeysOn(isa, l, o.kc.data(), o.ks.data(), o.kz.data(), groups, o.kd.data()).ok());
      EXPECT_TRUE(internal::KiviDequantizeValuesOn(isa, l, o.vc.data(), o.vs.data(), o.vz.data(), tokens, o.vd.data()).ok());
      return o;
    };
    auto same = [](const auto& a, const auto& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
    };
    const Out ref = run(CpuIsa::kPortable);
    for (const CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (!internal::CpuSupports(isa)) continue;
      const Out o = run(isa);
      const char* name = internal::CpuIsaName(isa);
      EXPECT_TRUE(same(o.kc, ref.kc)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.ks, ref.ks)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.kz, ref.kz)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.vc, ref.vc)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.vs, ref.vs)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.vz, ref.vz)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.kd, ref.kd)) << name << " bits " << bits;
      EXPECT_TRUE(same(o.vd, ref.vd)) << name << " bits " << bits;
    }
  }
}

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
