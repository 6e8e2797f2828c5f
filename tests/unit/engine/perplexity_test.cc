// Perplexity of the uncompressed cache on real text, and the consistency of the decode path
// (attention through the LayerCache) with the exact prefill path.
#include <gtest/gtest.h>

#include <cmath>

#include "examples/llama/corpus.h"
#include "examples/llama/model_loader.h"
#include "examples/llama/perplexity.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

class PerplexityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    auto text = ReadTextFile(testing::DevText());
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    text_ = std::move(text).value();
  }
  LoadedModel model_;
  std::string text_;
};

TEST_F(PerplexityTest, FullCacheOnFirst20kTokensIsAbout1Point40Nats) {
  Transformer t(model_.weights);
  std::vector<int32_t> tokens = TokenizeDocuments(*model_.tokenizer, text_, 20000);
  ASSERT_EQ(tokens.size(), 20000u);
  auto caches = CacheFactoryForSpec("full", t.ShapeForLayer(0, 512));
  ASSERT_TRUE(caches.ok()) << caches.status().ToString();
  PerplexityOptions o;  // window 512, prefill 128, decode the rest through the cache
  auto r = EvaluatePerplexity(t, tokens, *caches, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens, 20000 - 40);  // 40 windows, each scores all but its first token
  EXPECT_GT(r->decode_tokens, r->tokens / 2);
  EXPECT_GE(r->nll_per_token(), 1.37);
  EXPECT_LE(r->nll_per_token(), 1.42);
  EXPECT_NEAR(r->ppl(), std::exp(r->nll_per_token()), 1e-9);
}

TEST_F(PerplexityTest, DecodeThroughExactCacheEqualsExactPrefill) {
  Transformer t(model_.weights);
  std::vector<int32_t> tokens = TokenizeDocuments(*model_.tokenizer, text_, 1024);
  PerplexityOptions all_prefill;
  all_prefill.window = 256;
  all_prefill.prefill = 256;
  PerplexityOptions all_decode = all_prefill;
  all_decode.prefill = 0;
  auto a = EvaluatePerplexity(t, tokens, ExactCacheFactory(), all_prefill);
  auto b = EvaluatePerplexity(t, tokens, ExactCacheFactory(), all_decode);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->decode_tokens, 0);
  EXPECT_EQ(b->decode_tokens, b->tokens);
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NEAR(a->nll_per_token(), b->nll_per_token(), 1e-6);
}

TEST_F(PerplexityTest, ParallelAndSerialWindowsAgreeExactly) {
  Transformer t(model_.weights);
  std::vector<int32_t> tokens = TokenizeDocuments(*model_.tokenizer, text_, 2000);
  PerplexityOptions o;
  o.window = 300;
  auto a = EvaluatePerplexity(t, tokens, ExactCacheFactory(), o);
  o.parallel = false;
  auto b = EvaluatePerplexity(t, tokens, ExactCacheFactory(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->nll_sum, b->nll_sum);
  EXPECT_EQ(a->windows, 7);
}

TEST_F(PerplexityTest, RejectsBadOptionsAndTokens) {
  Transformer t(model_.weights);
  std::vector<int32_t> tokens = {1, 2, 3};
  PerplexityOptions o;
  o.window = 1;
  EXPECT_EQ(EvaluatePerplexity(t, tokens, ExactCacheFactory(), o).status().code(), StatusCode::kInvalidArgument);
  o.window = 512;
  tokens.push_back(512);
  EXPECT_EQ(EvaluatePerplexity(t, tokens, ExactCacheFactory(), o).status().code(), StatusCode::kInvalidArgument);
}

TEST(PerplexityBinary, JsonHasTheFieldsPerPolicy) {
  const std::string cmd = testing::KvtLlama() + " ppl --model " + testing::ModelGguf() +
                          " --text " + testing::DevText() + " --max-tokens 1500 --window 256 --json 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  for (const char* field : {"\"policy\": \"full\"", "\"nll_per_token\": ", "\"ppl\": ", "\"tokens\": 1494"}) {
    EXPECT_NE(out.find(field), std::string::npos) << field << " missing in " << out;
  }
}

}  // namespace
}  // namespace kvt::llama
