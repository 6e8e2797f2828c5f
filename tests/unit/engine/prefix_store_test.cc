// The block-plane seam: a prompt whose prefix is in the PrefixKvStore reuses the stored K/V
// instead of recomputing it, and produces identical logits and text.
#include <gtest/gtest.h>

#include "examples/llama/generate.h"
#include "examples/llama/in_memory_prefix_store.h"
#include "examples/llama/model_loader.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

TEST(PrefixStore, SecondRequestReusesChunksWithIdenticalOutput) {
  auto model = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
  ASSERT_TRUE(model.ok());
  Transformer t(model->weights);
  InMemoryPrefixStore store(/*chunk_tokens=*/4);
  GenerateOptions o;
  o.prompt = "Once upon a time, there was a little girl named Lily. She";
  o.steps = 80;
  auto first = Generate(t, *model->tokenizer, ExactCacheFactory(), o, &store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->reused_prefix_tokens, 0);
  EXPECT_EQ(store.chunks(), static_cast<size_t>(first->prompt_tokens / 4));
  auto second = Generate(t, *model->tokenizer, ExactCacheFactory(), o, &store);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->reused_prefix_tokens, (first->prompt_tokens - 1) / 4 * 4);
  EXPECT_GT(store.retrieved_chunks(), 0);
  EXPECT_EQ(second->tokens, first->tokens);
  EXPECT_EQ(second->text, first->text);
}

TEST(PrefixStore, AppendedPrefixKvGivesBitIdenticalLogits) {
  auto model = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
  ASSERT_TRUE(model.ok());
  Transformer t(model->weights);
  const ModelConfig& c = t.config();
  std::vector<int32_t> prompt = model->tokenizer->Encode("Tom and Sue went to the beach to build a castle.", true, false);
  const int n = static_cast<int>(prompt.size()), p = 8;
  std::vector<float> ref(c.vocab_size), got(c.vocab_size);
  auto a = t.NewSequence(ExactCacheFactory(), n);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(t.Prefill(*a, prompt, {}, ref.data()).ok());
  // K/V of the first p tokens as a store would return them.
  std::vector<float> keys, values;
  for (int l = 0; l < c.n_layers; ++l) {
    keys.insert(keys.end(), a->dense_keys(l).begin(), a->dense_keys(l).begin() + p * c.kv_dim());
    values.insert(values.end(), a->dense_values(l).begin(), a->dense_values(l).begin() + p * c.kv_dim());
  }
  auto b = t.NewSequence(ExactCacheFactory(), n);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(t.AppendKv(*b, p, keys.data(), values.data()).ok());
  ASSERT_TRUE(t.Prefill(*b, std::span<const int32_t>(prompt).subspan(p), {}, got.data()).ok());
  EXPECT_EQ(got, ref);
  EXPECT_EQ(b->position(), n);
  // Decoding continues identically.
  ASSERT_TRUE(t.Decode(*a, 5, ref.data()).ok());
  ASSERT_TRUE(t.Decode(*b, 5, got.data()).ok());
  EXPECT_EQ(got, ref);
  // After a decode, no more prefix K/V can be appended.
  EXPECT_FALSE(t.AppendKv(*b, p, keys.data(), values.data()).ok());
}

}  // namespace
}  // namespace kvt::llama
