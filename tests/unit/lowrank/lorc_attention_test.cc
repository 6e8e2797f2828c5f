#include "host/kernels/lowrank/lorc_attention.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/lowrank/reference.h"

namespace kvt::kernels::lowrank {
namespace {

// Keys rebuilt as RoPE(Uk c) and values as Uv c in float64 from the same fp16 latents the kernel
// reads (so fp16 rounding is not part of the comparison); tolerance 5e-5 of the output scale.
TEST(LorcAttention, MatchesFloat64Reference) {
  std::mt19937 rng(13);
  struct Case { int kv, q, d, rk, rv; int64_t cap, n; };
  for (const Case c : {Case{1, 1, 8, 3, 5, 10, 7}, Case{4, 8, 8, 8, 8, 50, 50}, Case{2, 6, 20, 7, 2, 40, 33},
                       Case{2, 4, 128, 40, 64, 30, 29}}) {
    LorcAttentionArgs a;
    a.num_kv_heads = c.kv;
    a.num_q_heads = c.q;
    a.head_dim = c.d;
    a.key_rank = c.rk;
    a.value_rank = c.rv;
    a.capacity = c.cap;
    a.tokens = c.n;
    auto ku = lowrank_test::RandomVector(rng, static_cast<size_t>(c.kv) * c.d * c.rk, 0.5f);
    auto vu = lowrank_test::RandomVector(rng, static_cast<size_t>(c.kv) * c.d * c.rv, 0.5f);
    auto kl = lowrank_test::RandomVector(rng, static_cast<size_t>(c.kv) * c.cap * c.rk, 2.0f);
    auto vl = lowrank_test::RandomVector(rng, static_cast<size_t>(c.kv) * c.cap * c.rv);
    std::vector<Half> klh(kl.size()), vlh(vl.size());
    for (size_t i = 0; i < kl.size(); ++i) kl[i] = HalfToFloat(klh[i] = FloatToHalf(kl[i]));
    for (size_t i = 0; i < vl.size(); ++i) vl[i] = HalfToFloat(vlh[i] = FloatToHalf(vl[i]));
    auto q = lowrank_test::RandomVector(rng, static_cast<size_t>(c.q) * c.d);
    std::vector<int32_t> pos(c.cap);
    std::uniform_int_distribution<int32_t> up(0, 100000);
    for (auto& p : pos) p = up(rng);
    std::vector<float> rope(static_cast<size_t>(c.cap) * c.d);
    for (int64_t t = 0; t < c.cap; ++t) LorcRopeTable(pos[t], c.d, 10000.0f, rope.data() + t * c.d);
    std::vector<float> out(static_cast<size_t>(c.q) * c.d);
    a.key_up = ku.data();
    a.value_up = vu.data();
    a.key_latents = klh.data();
    a.value_latents = vlh.data();
    a.rope = rope.data();
    a.query = q.data();
    a.out = out.data();
    std::vector<uint8_t> ws(LorcAttentionWorkspaceBytes(a));
    ASSERT_TRUE(LorcAttention(a, ws.data(), ws.size()).ok());
    const int group = c.q / c.kv;
    for (int h = 0; h < c.kv; ++h) {
      std::vector<std::vector<double>> keys, values;
      for (int64_t t = 0; t < c.n; ++t) {
        std::vector<double> kp(c.d, 0.0), v(c.d, 0.0);
        for (int i = 0; i < c.d; ++i) {
          for (int j = 0; j < c.rk; ++j) kp[i] += double(ku[(h * c.d + i) * c.rk + j]) * kl[(h * c.cap + t) * c.rk + j];
          for (int j = 0; j < c.rv; ++j) v[i] += double(vu[(h * c.d + i) * c.rv + j]) * vl[(h * c.cap + t) * c.rv + j];
        }
        keys.push_back(lowrank_test::RefRope(kp.data(), c.d, pos[t], 10000.0));
        values.push_back(v);
      }
      for (int g = 0; g < group; ++g) {
        const size_t qo = static_cast<size_t>(h * group + g) * c.d;
        auto ref = lowrank_test::RefAttention(keys, values, q.data() + qo, c.d, 1.0 / std::sqrt(double(c.d)));
        // RoPE angles up to 1e5 rad: float32 cos/sin of those are accurate to ~4e-8 relative.
        EXPECT_LT(lowrank_test::RelMaxError(out.data() + qo, ref), 5e-5) << "d=" << c.d;
      }
    }
  }
}

TEST(LorcAttention, RejectsBadArguments) {
  LorcAttentionArgs a;
  a.num_kv_heads = 1;
  a.num_q_heads = 1;
  a.head_dim = 7;
  a.key_rank = a.value_rank = 2;
  std::vector<uint8_t> ws(1024);
  EXPECT_EQ(LorcAttention(a, ws.data(), ws.size()).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvt::kernels::lowrank
