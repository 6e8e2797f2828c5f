// Golden generation: greedy outputs of stories260K must match shared/data/README.md byte for byte,
// from the library (both checkpoint formats) and from the kvt-llama binary's stdout.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "examples/llama/generate.h"
#include "examples/llama/model_loader.h"
#include "tests/unit/engine/engine_test_data.h"

namespace kvt::llama {
namespace {

using testing::kGoldenEmpty200;
using testing::kGoldenZoo60;

std::string GenerateText(const std::string& model_path, const std::string& tokenizer_path,
                         const std::string& prompt, int steps) {
  auto model = LoadModelWithTokenizer(model_path, tokenizer_path);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return "";
  Transformer t(model->weights);
  GenerateOptions o;
  o.prompt = prompt;
  o.steps = steps;
  auto r = Generate(t, *model->tokenizer, ExactCacheFactory(), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->text : "";
}

TEST(GenerateGolden, EmptyPrompt200StepsLlama2c) {
  EXPECT_EQ(GenerateText(testing::ModelBin(), testing::TokenizerBin(), "", 200), kGoldenEmpty200);
}

TEST(GenerateGolden, ZooPrompt60StepsLlama2c) {
  EXPECT_EQ(GenerateText(testing::ModelBin(), testing::TokenizerBin(), "Zoo", 60), kGoldenZoo60);
}

TEST(GenerateGolden, EmptyPrompt200StepsGgufEmbeddedTokenizer) {
  EXPECT_EQ(GenerateText(testing::ModelGguf(), "", "", 200), kGoldenEmpty200);
}

TEST(GenerateGolden, ZooPrompt60StepsGgufWithTok512) {
  EXPECT_EQ(GenerateText(testing::ModelGguf(), testing::TokenizerBin(), "Zoo", 60), kGoldenZoo60);
}

TEST(GenerateGolden, FullPolicyFromRegistryMatchesToo) {
  auto model = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  Transformer t(model->weights);
  auto caches = CacheFactoryForSpec("full", t.ShapeForLayer(0, 200));
  ASSERT_TRUE(caches.ok()) << caches.status().ToString();
  GenerateOptions o;
  o.steps = 200;
  auto r = Generate(t, *model->tokenizer, *caches, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->text, kGoldenEmpty200);
}

// Runs the binary; returns its stdout (stderr discarded) and exit status.
std::string RunStdout(const std::string& args, int* status) {
  return testing::RunCommand(testing::KvtLlama() + " " + args + " 2>/dev/null", status);
}

TEST(GenerateGolden, BinaryPrintsOnlyTheTextOnStdout) {
  int status = 0;
  std::string out = RunStdout("generate --model " + testing::ModelBin() + " --tokenizer " +
                                  testing::TokenizerBin() + " --steps 200 --temperature 0",
                              &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, kGoldenEmpty200);
  out = RunStdout("generate --model " + testing::ModelGguf() + " --prompt Zoo --steps 60", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, kGoldenZoo60);
}

TEST(GenerateGolden, SamplingIsReproducibleFromItsSeed) {
  auto model = LoadModelWithTokenizer(testing::ModelBin(), testing::TokenizerBin());
  ASSERT_TRUE(model.ok());
  Transformer t(model->weights);
  GenerateOptions o;
  o.steps = 80;
  o.temperature = 1.0f;
  o.seed = 42;
  auto a = Generate(t, *model->tokenizer, ExactCacheFactory(), o);
  auto b = Generate(t, *model->tokenizer, ExactCacheFactory(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->text, kGoldenEmpty200);
}

}  // namespace
}  // namespace kvt::llama
