// Loaders: the llama2.c and GGUF checkpoints hold the same weights; an F16 GGUF loads and
// behaves like the F32 one within F16 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "examples/llama/gguf_loader.h"
#include "examples/llama/internal/half.h"
#include "examples/llama/llama2c_loader.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/perplexity.h"
#include "tests/unit/engine/engine_test_data.h"
#include "tests/unit/engine/gguf_test_writer.h"

namespace kvt::llama {
namespace {

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(Loader, Llama2cAndGgufHoldIdenticalWeights) {
  auto bin = LoadLlama2cCheckpoint(testing::ModelBin());
  auto gguf = LoadGgufModel(testing::ModelGguf());
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  const ModelWeights& a = *bin;
  const ModelWeights& b = gguf->weights;
  EXPECT_EQ(a.config.dim, 64);
  EXPECT_EQ(a.config.n_kv_heads, 4);
  EXPECT_EQ(a.config.head_dim(), 8);
  EXPECT_EQ(b.config.n_layers, 5);
  EXPECT_EQ(b.config.seq_len, 2048);  // the GGUF's context_length field
  EXPECT_EQ(a.wq, b.wq);
  EXPECT_EQ(a.wk, b.wk);
  EXPECT_EQ(a.w2, b.w2);
  EXPECT_EQ(a.tok_emb, b.tok_emb);
  EXPECT_EQ(a.rms_final, b.rms_final);
  for (size_t i = 0; i < a.tok_emb.size(); ++i) ASSERT_EQ(b.classifier()[i], a.tok_emb[i]);
}

TEST(Loader, HalfConversionIsExactOnRepresentableValues) {
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f}) {
    EXPECT_EQ(internal::HalfToFloat(testing::FloatToHalf(x)), x) << x;
  }
  EXPECT_TRUE(std::isinf(internal::HalfToFloat(0x7C00)));
  EXPECT_TRUE(std::isnan(internal::HalfToFloat(0x7E00)));
}

TEST(Loader, F16GgufLoadsAndTracksF32) {
  auto f32 = GgufFile::Load(testing::ModelGguf());
  ASSERT_TRUE(f32.ok());
  kvt::testing::TempDir dir;
  const std::string path = dir.File("stories260K-f16.gguf");
  std::vector<uint8_t> bytes = testing::WriteGguf(*f32, true);
  WriteFile(path, bytes);
  auto f16_model = LoadModelFile(path);
  ASSERT_TRUE(f16_model.ok()) << f16_model.status().ToString();
  auto f32_model = LoadModelFile(testing::ModelGguf());
  ASSERT_TRUE(f32_model.ok());
  const auto& a = f32_model->weights.wq;
  const auto& b = f16_model->weights.wq;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], std::abs(a[i]) * 1e-3f + 1e-7f);
  // Same next-token NLL within F16 noise.
  std::vector<int32_t> tokens = f32_model->tokenizer->Encode("Once upon a time, there was a little girl named Lily.", true, false);
  PerplexityOptions o;
  Transformer ta(f32_model->weights), tb(f16_model->weights);
  auto ra = EvaluatePerplexity(ta, tokens, ExactCacheFactory(), o);
  auto rb = EvaluatePerplexity(tb, tokens, ExactCacheFactory(), o);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_NEAR(ra->nll_per_token(), rb->nll_per_token(), 0.02);
}

TEST(Loader, RewrittenF32GgufIsIdentical) {
  auto f = GgufFile::Load(testing::ModelGguf());
  ASSERT_TRUE(f.ok());
  kvt::testing::TempDir dir;
  WriteFile(dir.File("copy.gguf"), testing::WriteGguf(*f, false));
  auto a = LoadModelFile(dir.File("copy.gguf"));
  auto b = LoadModelFile(testing::ModelGguf());
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ(a->weights.w1, b->weights.w1);
  EXPECT_EQ(a->weights.wcls, b->weights.wcls);
}

}  // namespace
}  // namespace kvt::llama
