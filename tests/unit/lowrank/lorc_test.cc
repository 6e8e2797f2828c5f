#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "policies/lowrank/lorc_cache.h"
#include "policies/lowrank/lorc_factors.h"
#include "policies/registry.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/lowrank/sequence_fixture.h"

namespace kvt::policies::lowrank {
namespace {

struct Model {
  int L = 4, dim = 24, kv = 2, d = 8;
  std::vector<float> wk, wv;
  LorcWeightsView View() const { return {L, dim, kv, d, wk.data(), wv.data()}; }
};

Model RandomModel(std::mt19937& rng) {
  Model m;
  m.wk = lowrank_test::RandomVector(rng, static_cast<size_t>(m.L) * m.kv * m.d * m.dim, 0.3f);
  m.wv = lowrank_test::RandomVector(rng, m.wk.size(), 0.3f);
  // Make deeper layers better conditioned so the progressive schedule has something to follow.
  for (int l = 0; l < m.L; ++l) {
    for (int r = 0; r < m.kv * m.d; ++r) {
      const float s = 1.0f + 3.0f * (m.L - l) * (r % m.d) / m.d;
      for (int c = 0; c < m.dim; ++c) m.wk[(static_cast<size_t>(l) * m.kv * m.d + r) * m.dim + c] /= s;
    }
  }
  return m;
}

// At full rank, up * (down x) reproduces W_k x and W_v x (tolerance 1e-4 relative).
TEST(LorcFactors, FullRankReproducesProjections) {
  std::mt19937 rng(21);
  Model m = RandomModel(rng);
  auto f = ComputeLorcFactors(m.View(), 1.0, 1.0, LorcSchedule::kProgressive);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto x = lowrank_test::RandomVector(rng, m.dim);
  for (int l = 0; l < m.L; ++l) {
    const auto& lf = f->layers[l];
    ASSERT_EQ(lf.key_rank, m.d);
    ASSERT_EQ(lf.value_rank, m.d);
    for (int pass = 0; pass < 2; ++pass) {
      const auto& W = pass == 0 ? m.wk : m.wv;
      const auto& up = pass == 0 ? lf.key_up : lf.value_up;
      const auto& down = pass == 0 ? lf.key_down : lf.value_down;
      for (int h = 0; h < m.kv; ++h) {
        std::vector<double> c(m.d, 0.0);
        for (int j = 0; j < m.d; ++j) {
          for (int i = 0; i < m.dim; ++i) c[j] += double(down[(h * m.d + j) * m.dim + i]) * x[i];
        }
        for (int r = 0; r < m.d; ++r) {
          double want = 0.0, got = 0.0;
          for (int i = 0; i < m.dim; ++i) want += double(W[((static_cast<size_t>(l) * m.kv + h) * m.d + r) * m.dim + i]) * x[i];
          for (int j = 0; j < m.d; ++j) got += double(up[(h * m.d + r) * m.d + j]) * c[j];
          EXPECT_NEAR(got, want, 1e-4 * (1.0 + std::fabs(want)));
        }
      }
    }
  }
}

TEST(LorcFactors, SchedulesHitTheBudget) {
  const std::vector<double> logc = {3.0, 2.5, 1.0, 0.5, 0.2, 0.1};
  for (double budget : {0.25, 0.5, 0.6, 0.9}) {
    for (auto sched : {LorcSchedule::kProgressive, LorcSchedule::kUniform}) {
      auto r = LorcRanks(logc, 128, budget, sched);
      ASSERT_TRUE(r.ok());
      int64_t sum = 0;
      for (size_t l = 0; l < r->size(); ++l) {
        sum += (*r)[l];
        EXPECT_GE((*r)[l], 1);
        EXPECT_LE((*r)[l], 128);
        if (l > 0) {
          EXPECT_LE((*r)[l], (*r)[l - 1]) << "ranks must not grow with depth";
        }
      }
      EXPECT_EQ(sum, std::llround(budget * 6 * 128));
      if (sched == LorcSchedule::kProgressive) {
        EXPECT_GT((*r)[0], (*r)[5]);
      }
    }
  }
  EXPECT_FALSE(LorcRanks(logc, 8, 0.0, LorcSchedule::kUniform).ok());
  EXPECT_FALSE(LorcRanks({}, 8, 0.5, LorcSchedule::kUniform).ok());
}

// Factors of a random model (value budget 0.75), saved as `path`.
StatusOr<LorcFactors> SaveRandomFactors(uint32_t seed, LorcSchedule schedule, const std::string& path) {
  std::mt19937 rng(seed);
  Model m = RandomModel(rng);
  auto f = ComputeLorcFactors(m.View(), 0.5, 0.75, schedule);
  if (f.ok()) KVT_RETURN_IF_ERROR(SaveLorcFactors(*f, path));
  return f;
}

std::vector<uint8_t> FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(LorcFactors, FileRoundTripAndCorruption) {
  kvt::testing::TempDir dir;
  const std::string path = dir.path() + "/m.lorc";
  auto f = SaveRandomFactors(22, LorcSchedule::kProgressive, path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto g = LoadLorcFactors(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->layers.size(), f->layers.size());
  for (size_t l = 0; l < f->layers.size(); ++l) {
    EXPECT_EQ(g->layers[l].key_rank, f->layers[l].key_rank);
    EXPECT_EQ(g->layers[l].value_down, f->layers[l].value_down);
  }
  std::vector<uint8_t> bytes = FileBytes(path);
  for (size_t cut : {size_t{0}, size_t{7}, size_t{40}, bytes.size() - 1}) {
    auto r = ParseLorcFactors(bytes.data(), cut);
    EXPECT_FALSE(r.ok());
  }
  bytes[60] ^= 1;
  EXPECT_EQ(ParseLorcFactors(bytes.data(), bytes.size()).status().code(), StatusCode::kCorruption);
  EXPECT_FALSE(LoadLorcFactors(dir.path() + "/missing.lorc").ok());
}

// The format says FNV-1a 64; a mistyped offset basis once made it another hash, which tools
// implementing the format would have refused. Files with that older checksum still load.
TEST(LorcFactors, ChecksumIsFnv1a64AndOlderFilesStillLoad) {
  kvt::testing::TempDir dir;
  const std::string path = dir.path() + "/m.lorc";
  auto f = SaveRandomFactors(23, LorcSchedule::kUniform, path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::vector<uint8_t> bytes = FileBytes(path);
  ASSERT_GT(bytes.size(), 8u);
  auto fnv = [&](uint64_t basis) {
    uint64_t h = basis;
    for (size_t i = 0; i + 8 < bytes.size(); ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
    return h;
  };
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  EXPECT_EQ(stored, fnv(0xcbf29ce484222325ull));

  const uint64_t legacy = fnv(1469598103934665603ull);
  std::memcpy(bytes.data() + bytes.size() - 8, &legacy, 8);
  EXPECT_TRUE(ParseLorcFactors(bytes.data(), bytes.size()).ok());
  const uint64_t wrong = legacy ^ 1;
  std::memcpy(bytes.data() + bytes.size() - 8, &wrong, 8);
  EXPECT_EQ(ParseLorcFactors(bytes.data(), bytes.size()).status().code(), StatusCode::kCorruption);
}

LayerShape Shape(int layer, int layers, int kv, int q, int d) {
  LayerShape s;
  s.layer = layer;
  s.num_layers = layers;
  s.num_kv_heads = kv;
  s.num_q_heads = q;
  s.head_dim = d;
  return s;
}

// fp16 unit roundoff: a latent stored as fp16 is within 2^-11 of its float32 value (relative).
constexpr double kHalfU = 1.0 / 2048.0;

// Calibrated LoRC at full rank: latents are an orthonormal change of basis of the pre-RoPE keys
// (keys rebuilt and rotated at their positions), stored as fp16. So (a) attention equals exact
// attention over what the cache reconstructs (float32 math only, tolerance 1e-4), and (b) what it
// reconstructs is each K/V vector up to fp16 rounding of its latents: per token and head,
// ||x' - x||_2 <= 2u ||x||_2 with u = 2^-11 (tokens appended before calibration are rounded twice:
// raw, then projected; orthonormal factors and RoPE preserve norms), plus 1e-5 for float32.
TEST(LorcCache, FullRankEqualsExactAttention) {
  std::mt19937 rng(23);
  lowrank_test::Sequence seq;
  seq.Build(rng, 2, 6, 8, 120);
  auto cache = LorcCache::Calibrated(Shape(0, 1, 2, 6, 8), 1.0f, 1.0f, 32);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, 20)).ok());
  std::vector<float> out(48);
  std::vector<std::vector<float>> queries, outs;
  for (int64_t t = 20; t < 120; ++t) {
    ASSERT_TRUE((*cache)->Append(seq.Batch(t, 1)).ok());
    auto q = lowrank_test::RandomVector(rng, 48);
    ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
    queries.push_back(q);
    outs.push_back(out);
  }
  std::vector<float> k(seq.k.size()), v(seq.v.size());
  ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
  double worst = 0.0;
  for (size_t row = 0; row < k.size() / 8; ++row) {
    for (int pass = 0; pass < 2; ++pass) {
      const float* got = (pass == 0 ? k : v).data() + row * 8;
      const float* want = (pass == 0 ? seq.k : seq.v).data() + row * 8;
      double err = 0.0, norm = 0.0;
      for (int i = 0; i < 8; ++i) {
        err += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        norm += double(want[i]) * want[i];
      }
      ASSERT_LE(std::sqrt(err), (2 * kHalfU + 1e-5) * std::sqrt(norm)) << "row " << row << " pass " << pass;
      worst = std::max(worst, std::sqrt(err / norm));
    }
  }
  EXPECT_GT(worst, 0.0) << "fp16 latents must round something";
  // Calibration happened at the 32nd token (t = 31); from then on latents never change, so every
  // later step's attention is exact attention over the final reconstruction.
  lowrank_test::Sequence rebuilt = seq;
  rebuilt.k = k;
  rebuilt.v = v;
  for (int64_t t = 31; t < 120; ++t) {
    EXPECT_LT(lowrank_test::RelMaxError(outs[t - 20].data(), rebuilt.Exact(queries[t - 20].data(), t + 1)), 1e-4)
        << t;
  }
}

// Half the rank: the reconstruction is the projection onto the basis, so it loses something but
// never adds energy (||K'|| <= ||K||), and attention over it is what the cache computes.
TEST(LorcCache, ReconstructionIsTheProjection) {
  std::mt19937 rng(25);
  lowrank_test::Sequence seq;
  seq.Build(rng, 2, 6, 8, 64);
  auto cache = LorcCache::Calibrated(Shape(0, 1, 2, 6, 8), 0.5f, 0.5f, 64);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Append(seq.Batch(0, 64)).ok());
  std::vector<float> k(seq.k.size()), v(seq.v.size());
  ASSERT_TRUE((*cache)->ReconstructKv(k.data(), v.data()));
  double ek = 0, nk = 0, rk = 0, ev = 0, nv = 0, rv = 0;
  for (size_t i = 0; i < k.size(); ++i) {
    ek += (k[i] - seq.k[i]) * double(k[i] - seq.k[i]);
    nk += double(seq.k[i]) * seq.k[i];
    rk += double(k[i]) * k[i];
    ev += (v[i] - seq.v[i]) * double(v[i] - seq.v[i]);
    nv += double(seq.v[i]) * seq.v[i];
    rv += double(v[i]) * v[i];
  }
  EXPECT_GT(ek, 1e-6 * nk) << "rank 4 of 8 must lose something";
  EXPECT_GT(ev, 1e-6 * nv);
  // A projection never adds energy; fp16 latents may, by at most (1 + u) in norm per rounding
  // (two here: raw tokens before calibration, then their projections), so (1 + u)^4 in energy.
  const double slack = std::pow(1 + kHalfU, 4) + 1e-5;
  EXPECT_LE(rk, nk * slack);
  EXPECT_LE(rv, nv * slack);
  // Attention over the reconstruction equals the cache's own attention.
  lowrank_test::Sequence rebuilt = seq;
  rebuilt.k = k;
  rebuilt.v = v;
  auto q = lowrank_test::RandomVector(rng, 48);
  std::vector<float> out(48);
  ASSERT_TRUE((*cache)->Attend(q.data(), out.data()).ok());
  EXPECT_LT(lowrank_test::RelMaxError(out.data(), rebuilt.Exact(q.data(), 64)), 1e-4);
}

// With factors from a file: shape checks, lower rank -> fewer bytes, attention finite.
TEST(LorcCache, FromFactorsAndRegistry) {
  std::mt19937 rng(24);
  Model m = RandomModel(rng);
  auto f = ComputeLorcFactors(m.View(), 0.5, 0.5, LorcSchedule::kProgressive);
  ASSERT_TRUE(f.ok());
  kvt::testing::TempDir dir;
  const std::string path = dir.path() + "/m.lorc";
  ASSERT_TRUE(SaveLorcFactors(*f, path).ok());
  lowrank_test::Sequence seq;
  seq.Build(rng, 2, 4, 8, 50);
  for (int l = 0; l < m.L; ++l) {
    auto c = MakeLayerCache("lorc:factors=" + path, Shape(l, m.L, 2, 4, 8));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE((*c)->Append(seq.Batch(0, 50)).ok());
    std::vector<float> q = lowrank_test::RandomVector(rng, 32), out(32);
    ASSERT_TRUE((*c)->Attend(q.data(), out.data()).ok());
    for (float x : out) EXPECT_TRUE(std::isfinite(x));
    auto* lc = dynamic_cast<LorcCache*>(c->get());
    ASSERT_NE(lc, nullptr);
    EXPECT_EQ(lc->key_rank(), f->layers[l].key_rank);
    const uint64_t r = lc->key_rank() + lc->value_rank();
    // fp16 latents (2 B each) and an int32 position per token; float32 factors per layer.
    EXPECT_EQ(lc->stored_bytes(), 50u * (2 * r * 2 + 4) + 2 * 8 * r * 4);
  }
  EXPECT_FALSE(MakeLayerCache("lorc:factors=" + path, Shape(0, 3, 2, 4, 8)).ok());  // wrong model
  EXPECT_FALSE(MakeLayerCache("lorc:factors=/nonexistent.lorc", Shape(0, 4, 2, 4, 8)).ok());
  EXPECT_TRUE(MakeLayerCache("lorc:kratio=0.25", Shape(0, 4, 2, 4, 8)).ok());
  EXPECT_FALSE(MakeLayerCache("lorc", Shape(0, 4, 2, 4, 7)).ok());
  auto c = MakeLayerCache("lorc", Shape(0, 4, 2, 4, 8));
  ASSERT_TRUE(c.ok());
  auto b = seq.Batch(0, 3);
  b.keys_pre_rope = nullptr;
  EXPECT_FALSE((*c)->Append(b).ok());
}

}  // namespace
}  // namespace kvt::policies::lowrank
