// KIVI quantization: every vector path this CPU can run (AVX2, AVX-512, forced through the
// internal *On entry points) writes the same bytes as the portable path, on random ragged shapes
// (odd KV head counts, head_dim % 16 == 8, padded token rows, groups of 8..128 tokens, every value
// group dividing head_dim) and on the Llama-3.1-8B shapes the fast paths are built for, at every
// bit width. Outputs start from a fill pattern and carry a guard past their end, so a path that
// writes a byte it should not (or skips one) is caught as well.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "host/kernels/internal/kivi_quantize_isa.h"
#include "tests/unit/kernels/reference.h"

namespace kvt::kernels {
namespace {

using internal::CpuIsa;

constexpr size_t kGuard = 64;  // elements past each output's end that must stay untouched

struct Shape {
  KiviLayout layout;
  int64_t token_stride, groups, tokens;
};

std::string Describe(const Shape& s) {
  const KiviLayout& l = s.layout;
  return "bits " + std::to_string(l.bits) + " kv_heads " + std::to_string(l.shape.kv_heads) +
         " head_dim " + std::to_string(l.shape.head_dim) + " G " + std::to_string(l.key_group) +
         " vg " + std::to_string(l.value_group) + " stride " + std::to_string(s.token_stride) +
         " groups " + std::to_string(s.groups) + " tokens " + std::to_string(s.tokens);
}

template <typename T>
std::vector<T> Filled(size_t n) {
  std::vector<T> v(n + kGuard);
  std::memset(static_cast<void*>(v.data()), 0xA5, v.size() * sizeof(T));
  return v;
}

struct Outputs {
  std::vector<uint8_t> kc, vc;
  std::vector<Half> ks, kz, vs, vz;
  std::vector<float> kd, vd;
};

Outputs Run(CpuIsa isa, const Shape& s, const std::vector<Half>& x) {
  const KiviLayout& l = s.layout;
  const int64_t h = l.shape.kv_heads, row = h * l.shape.head_dim;
  Outputs o;
  o.kc = Filled<uint8_t>(s.groups * h * l.KeyGroupCodeBytes());
  o.ks = Filled<Half>(s.groups * row);
  o.kz = Filled<Half>(s.groups * row);
  o.vc = Filled<uint8_t>(s.tokens * h * l.ValueTokenCodeBytes());
  o.vs = Filled<Half>(s.tokens * h * l.ValueGroups());
  o.vz = Filled<Half>(s.tokens * h * l.ValueGroups());
  o.kd = Filled<float>(s.groups * l.key_group * row);
  o.vd = Filled<float>(s.tokens * row);
  EXPECT_TRUE(internal::KiviQuantizeKeysOn(isa, l, x.data(), s.token_stride, s.groups, o.kc.data(),
                                           o.ks.data(), o.kz.data())
                  .ok());
  EXPECT_TRUE(internal::KiviQuantizeValuesOn(isa, l, x.data(), s.token_stride, s.tokens,
                                             o.vc.data(), o.vs.data(), o.vz.data())
                  .ok());
  EXPECT_TRUE(internal::KiviDequantizeKeysOn(isa, l, o.kc.data(), o.ks.data(), o.kz.data(),
                                             s.groups, o.kd.data())
                  .ok());
  EXPECT_TRUE(internal::KiviDequantizeValuesOn(isa, l, o.vc.data(), o.vs.data(), o.vz.data(),
                                               s.tokens, o.vd.data())
                  .ok());
  return o;
}

template <typename T>
bool SameBytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

int64_t InputHalves(const Shape& s) { return std::max(s.groups * s.layout.key_group, s.tokens) * s.token_stride; }

void ExpectPathsAgreeOn(const Shape& s, const std::vector<Half>& x) {
  const Outputs ref = Run(CpuIsa::kPortable, s, x);
  for (const CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!internal::CpuSupports(isa)) continue;
    const Outputs o = Run(isa, s, x);
    const std::string what = std::string(internal::CpuIsaName(isa)) + ": " + Describe(s);
    EXPECT_TRUE(SameBytes(o.kc, ref.kc)) << "key codes, " << what;
    EXPECT_TRUE(SameBytes(o.ks, ref.ks)) << "key scales, " << what;
    EXPECT_TRUE(SameBytes(o.kz, ref.kz)) << "key zeros, " << what;
    EXPECT_TRUE(SameBytes(o.vc, ref.vc)) << "value codes, " << what;
    EXPECT_TRUE(SameBytes(o.vs, ref.vs)) << "value scales, " << what;
    EXPECT_TRUE(SameBytes(o.vz, ref.vz)) << "value zeros, " << what;
    EXPECT_TRUE(SameBytes(o.kd, ref.kd)) << "dequantized keys, " << what;
    EXPECT_TRUE(SameBytes(o.vd, ref.vd)) << "dequantized values, " << what;
  }
}

void ExpectPathsAgree(const Shape& s, std::mt19937& rng) {
  ExpectPathsAgreeOn(s, testing::RandomHalves(InputHalves(s), rng, 6.0f));
}

TEST(KiviQuantizePaths, RaggedShapesMatchPortableBytes) {
  std::mt19937 rng(20261123);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int iter = 0; iter < 60; ++iter) {
    for (const int bits : {1, 2, 4, 8}) {
      const int head_dim = 8 * pick(1, 34);  // 8 .. 272: % 16 == 8 tails and multiples of 64 alike
      std::vector<int> divisors;
      for (int vg = 8; vg <= head_dim; vg += 8) {
        if (head_dim % vg == 0) divisors.push_back(vg);
      }
      const int value_group = divisors[pick(0, static_cast<int>(divisors.size()) - 1)];
      const int kv_heads = pick(1, 9);
      const KiviLayout l{{kv_heads, kv_heads, head_dim}, bits, 8 * pick(1, 16), value_group};
      ASSERT_TRUE(l.Validate().ok());
      const int64_t row = static_cast<int64_t>(kv_heads) * head_dim;
      const Shape s{l, row + (pick(0, 1) ? 0 : pick(1, 40)), pick(1, 4), pick(1, 45)};
      ExpectPathsAgree(s, rng);
      if (HasFailure()) return;  // one shape's report is enough
    }
  }
}

TEST(KiviQuantizePaths, LlamaShapesMatchPortableBytes) {
  std::mt19937 rng(8);
  for (const int bits : {1, 2, 4, 8}) {
    for (const int group : {32, 64}) {
      for (const int value_group : {16, 32, 64, 128}) {
        const KiviLayout l{{32, 8, 128}, bits, group, value_group};
        // Enough groups for several oneTBB chunks and the streamed (non-temporal) dequantization.
        const int64_t groups = bits == 2 && value_group == 32 ? 80 : 5;
        ExpectPathsAgree(Shape{l, 8 * 128, groups, groups * group + 7}, rng);
        if (HasFailure()) return;
      }
    }
  }
}

// Inputs that put codes exactly on rounding ties and at the clamps: small integers and halves
// (a group spanning 0..2 at 1 bit has scale 2, so 1 lands on v = 0.5 exactly; at 2 bits 0..3 gives
// scale 1 and every half-integer is a tie), then with a sprinkling of infinities and fp16's largest
// values (their groups' scales overflow: every path must still write the same bytes). NaN and
// signed zeros are outside the byte-equality contract (kivi_quantize.h); zeros appear here only
// as the positive 0 of the level grid.
TEST(KiviQuantizePaths, TiesAndInfinitiesMatchPortableBytes) {
  std::mt19937 rng(5);
  const float specials[] = {INFINITY, -INFINITY, 65504.0f, -65504.0f, 1.0f};
  for (const bool with_specials : {false, true}) {
    for (const int bits : {1, 2, 4, 8}) {
      for (const int group : {32, 64}) {
        const KiviLayout l{{32, 8, 128}, bits, group, bits == 1 ? 64 : 32};
        const Shape s{l, 8 * 128, 3, 3 * group + 5};
        std::vector<Half> x(InputHalves(s));
        std::uniform_int_distribution<int> level(0, 2 * l.levels());  // halves in [0, levels]
        std::uniform_int_distribution<int> special(0, 199);  // 5 in 200: a special value
        for (auto& h : x) {
          const int sp = special(rng);
          h = FloatToHalf(with_specials && sp < 5 ? specials[sp] : 0.5f * static_cast<float>(level(rng)));
        }
        SCOPED_TRACE(with_specials ? "with infinities and +-65504" : "ties only");
        ExpectPathsAgreeOn(s, x);
        if (HasFailure()) return;
      }
    }
  }
}

// Groups whose range is a few fp16 subnormal steps: the scale rounds to a subnormal far from
// (max - min) / levels, so codes reach past levels before the clamp (the AVX-512 key path clamps
// only such groups); and constant groups, whose scale is 0. Never a zero input (a zero minimum
// may legitimately differ in sign between paths).
TEST(KiviQuantizePaths, SubnormalScalesAndConstantGroupsMatchPortableBytes) {
  std::mt19937 rng(11);
  for (const int bits : {2, 4, 8}) {
    for (const int span : {4, 20, 340, 1000}) {  // in units of fp16's smallest subnormal, 2^-24
      const KiviLayout l{{32, 8, 128}, bits, 32, 32};
      const Shape s{l, 8 * 128, 4, 4 * 32 + 3};
      std::vector<Half> x(InputHalves(s));
      std::uniform_int_distribution<int> step(1, span);
      std::bernoulli_distribution negative(0.3);
      for (size_t i = 0; i < x.size(); ++i) {
        const bool constant_group = (i / s.token_stride / 32) % 4 == 3;  // every fourth key group
        const float v = std::ldexp(static_cast<float>(constant_group ? 3 : step(rng)), -24);
        x[i] = FloatToHalf(negative(rng) && !constant_group ? -v : v);
      }
      SCOPED_TRACE("bits " + std::to_string(bits) + ", span " + std::to_string(span) + " subnormal steps");
      ExpectPathsAgreeOn(s, x);
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace kvt::kernels
